"""A response head as the lean reader parses it (RFC 9112 §4, §5): sans-I/O, and shaped like
httpx's responses, so that the very same validate.validate checks both readers' replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from freight.errors import ProtocolViolation, TransientError


class HeadHeaders:
    """Response headers with case-insensitive ``get`` (RFC 9110 §5.1), as httpx's offer.

    Values are decoded as httpx decodes them: ASCII, else UTF-8, else Latin-1 (servers send
    raw UTF-8 file names in Content-Disposition). A repeated field keeps its values joined
    with ", " (RFC 9110 §5.3).
    """

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self._fields: dict[str, str] = {}
        for name, value in pairs:
            key, text = name.decode("latin-1").lower(), _decode(value)
            self._fields[key] = f"{self._fields[key]}, {text}" if key in self._fields else text

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._fields.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields


def _decode(value: bytes) -> str:
    for encoding in ("ascii", "utf-8"):
        try:
            return value.decode(encoding)
        except UnicodeDecodeError:
            pass
    return value.decode("latin-1")


@dataclass
class Head:
    """A response head read by the lean reader: what validate.validate needs of a response."""

    status_code: int
    reason_phrase: str
    headers: HeadHeaders
    url: str
    extensions: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        """Nothing to release: the body belongs to the Connection."""


class UseHttpx(Exception):
    """This request is better made by httpx (a redirect, a proxy, an odd answer)."""


def parse_head(head: bytes, url: str) -> Head:
    # Header values are decoded by HeadHeaders as httpx decodes its own (RFC 9110 §5.5
    # allows obs-text, which servers use for raw UTF-8 file names).
    status_line, *header_lines = head.split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():  # ASCII
        raise TransientError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    pairs = []
    for line in header_lines:
        name, sep, value = line.partition(b":")
        if not sep or line[:1] in (b" ", b"\t"):
            raise UseHttpx("obsolete header folding")
        pairs.append((name.strip(), value.strip()))
    return Head(int(code), reason.decode("latin-1"), HeadHeaders(pairs), url)


def is_interim(head: Head) -> bool:
    """Whether ``head`` is an interim answer (100 Continue, 103 Early Hints; RFC 9110 §15.2)
    after which the final head follows. A switch of protocols (101) is no download's."""
    if not 100 <= head.status_code < 200:
        return False
    if head.status_code == 101:
        raise ProtocolViolation("the server switched protocols (HTTP 101)")
    return True


def check_framing(head: Head) -> None:
    """A chunked body is httpx's to read (RFC 9112 §7.1): UseHttpx."""
    if "chunked" in (head.headers.get("transfer-encoding") or "").lower():
        raise UseHttpx("chunked body")
