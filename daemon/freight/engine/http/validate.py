"""The rules a reply to a range request must keep, checked before a byte of it is written.

Sans-I/O: these functions read a response head (an httpx.Response or a lean ``Head``, the
same checks for both) and say what it means. The rules (RFC 9110):
- §14.2 Range: we ask ``bytes=START-`` or ``bytes=START-LAST`` (LAST inclusive).
- §13.1.5 If-Range: every request for a part of a file we already have carries the strong
  ETag (else the Last-Modified date) we saw first. A server whose file changed then sends the
  whole new file with 200 instead of a 206 we would splice into the old one.
- §14.4 Content-Range: a 206 must describe exactly the range we asked for and the size we
  know; anything else is refused before a byte is written.
- §15.5.17 416: ``Content-Range: bytes */0`` to ``bytes=0-`` is how a zero-byte file answers.
- §8.8.3 ETag: a weak validator (``W/"..."``) cannot be used with If-Range; it is ignored,
  but compared on every response.
- §10.2.3 Retry-After: delay-seconds or an HTTP-date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from freight.engine.http.reply import Reply
from freight.errors import (
    FileChangedError,
    HTTPStatusError,
    ProtocolViolation,
    RangeError,
    ThrottledError,
    TransientError,
)


class Headers(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


class ResponseHead(Protocol):
    """What validation needs of a response: an httpx.Response or a lean ``Head``."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    @property
    def url(self) -> Any: ...

    def close(self) -> None: ...


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)
#: The largest size a server may declare: a file offset (off_t) and an SQLite INTEGER are
#: signed 64-bit. A bigger number is a hostile or broken server, refused before it is stored.
MAX_DECLARED_SIZE = 2**63 - 1


@dataclass(frozen=True)
class Validators:
    etag: str | None = None  # strong ETags only
    last_modified: str | None = None

    def if_range(self) -> str | None:
        return self.etag or self.last_modified

    @classmethod
    def from_headers(cls, headers: Headers) -> Validators:
        etag = headers.get("etag")
        if etag and (etag.startswith("W/") or not etag.strip()):
            etag = None
        modified = headers.get("last-modified")
        if modified:
            from email.utils import parsedate_to_datetime

            try:
                parsedate_to_datetime(modified)
            except (TypeError, ValueError):
                modified = None
        return cls(etag, modified)

    def conflicts_with(self, other: Validators) -> bool:
        """True when both sides know a validator of the same kind and they differ."""
        if self.etag and other.etag:
            return self.etag != other.etag
        if self.last_modified and other.last_modified:
            return self.last_modified != other.last_modified
        return False


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """'bytes 0-99/1000' → (0, 100, 1000): start, end exclusive, total (None for '*')."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if not match:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return first, last + 1, total


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def range_header(start: int, end: int | None) -> str:
    """RFC 9110 §14.2: ``[start, end)`` as ``bytes=START-LAST`` (``end`` None: to the end)."""
    return f"bytes={start}-" + ("" if end is None else str(end - 1))


def check_status(response: ResponseHead) -> None:
    """Raise the matching error for a status that carries no usable body."""
    status = response.status_code
    if status in (200, 206, 416):
        return
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    if status in (429, 503):
        raise ThrottledError(f"server busy: HTTP {status}", retry_after=retry_after, status=status)
    if status in (408, 425, 500, 502, 504) or status >= 520:
        raise TransientError(f"server error: HTTP {status}", retry_after=retry_after, status=status)
    raise HTTPStatusError(f"HTTP {status} {response.reason_phrase}".strip(), status=status)


def validate(
    response: ResponseHead,
    start: int,
    end: int | None,
    validators: Validators | None,
    size: int | None,
) -> Reply:
    """Check the answer to a request for ``[start, end)`` and describe its body as a Reply.

    The body is either exactly the bytes asked for (``ranged``) or, on a 200, the whole file
    from offset 0 (``ranged`` False; :func:`require_ranged` says what that means).
    Raises FileChangedError when the server's validators or size contradict ``validators`` /
    ``size``, RangeError when a 206 is not the range asked for, and check_status's errors.
    """
    check_status(response)
    headers = response.headers
    seen = Validators.from_headers(headers)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    encoded = encoding not in ("", "identity")
    final_url = str(response.url)
    if validators is not None and validators.conflicts_with(seen):
        raise FileChangedError("the file changed on the server (its validator differs)")

    if response.status_code == 416:
        unsatisfied = _UNSATISFIED_RANGE.match(headers.get("content-range", ""))
        total = int(unsatisfied.group(1)) if unsatisfied else None
        if total is not None:
            _check_declared_size(total)
        if start == 0 and total == 0:
            return Reply(response, final_url, 416, 0, 0, 0, False, seen, encoded)
        if size is not None and total is not None and total != size:
            raise FileChangedError(f"the file changed on the server (size {total}, was {size})")
        raise RangeError(f"the server refused the range {start}- (HTTP 416)")

    if response.status_code == 206:
        parsed = parse_content_range(headers.get("content-range"))
        if parsed is None:
            raise RangeError(
                f"unusable Content-Range {headers.get('content-range')!r} in a 206"
            )
        got_start, got_end, total = parsed
        _check_declared_size(total if total is not None else got_end)
        if total is not None and size is not None and total != size:
            raise FileChangedError(f"the file changed on the server (size {total}, was {size})")
        want_end = end if end is not None else (total if total is not None else got_end)
        if got_start != start or got_end != want_end:
            raise RangeError(
                f"asked for bytes {start}-{want_end - 1}, the server sent {got_start}-{got_end - 1}"
            )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) != got_end - got_start:
            raise RangeError("Content-Length does not match Content-Range")
        if encoded:
            if got_start == 0 and end is None and total is not None and got_end == total:
                # The whole encoded representation from byte 0 (ranges count encoded bytes,
                # RFC 9110 §14.1.2): it can be decoded as one stream, never split.
                return Reply(response, final_url, 206, 0, None, None, False, seen, True)
            raise RangeError(f"a range encoded as {encoding} cannot be spliced")
        return Reply(response, final_url, 206, got_start, got_end, total, True, seen, False)

    # 200: the whole file from byte 0.
    length_header = headers.get("content-length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    if length is not None:
        _check_declared_size(length)
    if encoded:
        length = None  # Content-Length counts encoded bytes, not the file's
    if size is not None and length is not None and length != size:
        raise FileChangedError(f"the file changed on the server (size {length}, was {size})")
    return Reply(response, final_url, 200, 0, length, length, False, seen, encoded)


def require_ranged(reply: Reply, validators: Validators) -> None:
    """A part of a file must come as a 206. A 200 to a request that carried If-Range means
    the file changed (RFC 9110 §13.1.5): never splice it into the old one. Without If-Range
    it means the server cannot serve ranges at all."""
    if reply.ranged:
        return
    if validators.if_range():
        raise FileChangedError("the file changed on the server (If-Range did not match)")
    raise RangeError("the server answered a range request with the whole file")


def _check_declared_size(size: int) -> None:
    if size > MAX_DECLARED_SIZE:
        raise ProtocolViolation(f"the server declared an impossible size ({size} bytes)")
