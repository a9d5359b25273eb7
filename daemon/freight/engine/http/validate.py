"""The rules a reply to a range request must keep, checked before a byte of it is written.

Sans-I/O: these functions read a response head (an httpx.Response or a lean ``Head``, the
same checks for both) and say what it means. The rules (RFC 9110):
- §14.2 Range: we ask ``bytes=START-`` or ``bytes=START-LAST`` (LAST inclusive).
- §13.1.5 If-Range: every request for a part of a file we already have carries the strong
  ETag we saw first (with no ETag at all, the Last-Modified date; with a weak one,
  nothing). A server whose file changed then sends the whole new file with 200 instead of
  a 206 we would splice into the old one; a 200 with the very validators held only says
  it will not serve that range conditionally (UnconditionalRange: one stream).
- §14.4 Content-Range: a 206 must start where we asked, end no later than we asked, and
  declare the size we know; one that ends earlier is *short* and said so (the rest is asked
  for again); a total of ``*`` is not a size (UnknownSize); anything else is refused before a
  byte is written.
- §15.5.17 416: ``Content-Range: bytes */0`` to ``bytes=0-`` is how a zero-byte file answers.
- §8.8.3 ETag: a weak validator (``W/"..."``) cannot be used with If-Range; it is never sent
  there, but compared (weakly, §8.8.3.2) on every response.
- §8.6, §14.4 numbers are ASCII digits: "²", a sign or 5,000 digits are a ProtocolViolation,
  never an internal error.
- §10.2.3 Retry-After: delay-seconds or an HTTP-date.
"""

from __future__ import annotations

import functools
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


# ASCII digits only (re.A; RFC 9110 §14.4: 1*DIGIT); over 19 of them is refused (number()).
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+([0-9]+)-([0-9]+)/([0-9]+|\*)\s*$", re.I | re.A)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/([0-9]{1,19})\s*$", re.I | re.A)
#: The largest size a server may declare: a file offset (off_t) and an SQLite INTEGER are
#: signed 64-bit. A bigger number is a hostile or broken server, refused before it is stored.
MAX_DECLARED_SIZE = 2**63 - 1
#: 2**63 - 1 has 19 digits: a longer number is refused before int() sees it (int() of
#: thousands of digits is slow, and Python >= 3.11 refuses over 4300 with a ValueError).
_MAX_DIGITS = 19
_DIGITS = re.compile(r"[0-9]{1,19}", re.A)


class UnknownSize(RangeError):
    """A 206 whose total is ``*`` (RFC 9110 §14.4: the length is unknown) while no size
    is known (the probe's answer). Its body is a part of the file whose end nobody knows:
    never taken for the whole, never finalised at its length.

    The decision: a source answers it by asking the same URL once more without Range
    (request.RangeRequest.for_whole, in follow.fetch), and the download goes on as one
    stream, not splittable, its size what that answer says (or unknown, to the end of the
    body) — the whole file, as a user of curl or aria2 expects from a plain download; a
    server that answers that with a 206 again is refused (ProtocolViolation)."""


def number(text: str, what: str) -> int:
    """A non-negative decimal of ASCII digits (RFC 9110 §8.6, §14.4: ``1*DIGIT``), at most
    19 of them. ``str.isdigit`` and ``int`` accept "²" and other Unicode digits, ``int`` a
    sign and underscores: none of them is a number on the wire. Raises ProtocolViolation."""
    value = text.strip()
    if not _DIGITS.fullmatch(value):
        shown = value[:20] + ("..." if len(value) > 20 else "")
        raise ProtocolViolation(f"the server sent an invalid {what} ({shown!r})")
    return int(value)


def content_length(headers: Headers) -> int | None:
    """Content-Length (RFC 9110 §8.6), None when absent. A list of identical values is one
    value (§8.6 allows a recipient to accept it); differing or invalid ones are refused
    (RFC 9112 §6.3: an invalid length is an unrecoverable framing error)."""
    value = headers.get("content-length")
    if value is None:
        return None
    values = {number(v, "Content-Length") for v in value.split(",")}
    if len(values) != 1:
        raise ProtocolViolation("the server sent differing Content-Length values")
    length = values.pop()
    _check_declared_size(length)
    return length


def _opaque(tag: str) -> str:
    """An entity-tag's opaque-tag: what weak comparison compares (RFC 9110 §8.8.3.2)."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


@dataclass(frozen=True)
class Validators:
    """What identifies one version of the file (RFC 9110 §8.8). ``etag`` is the ETag as sent,
    weak (``W/"..."``) or strong: a weak one is never sent in If-Range (§13.1.5 needs a strong
    comparison) but is compared on every response (:meth:`conflicts_with`)."""

    etag: str | None = None
    last_modified: str | None = None

    @property
    def weak(self) -> bool:
        return bool(self.etag) and self.etag.strip().startswith("W/")  # type: ignore[union-attr]

    def if_range(self) -> str | None:
        """A strong ETag, else — with no ETag at all — the Last-Modified date. RFC 9110
        §13.1.5: a client MUST NOT send a date in If-Range when it has an entity tag, and
        never a weak tag. A weak tag is then guarded by the weak comparison on every 206
        (which carries the ETag, §15.3.7) alone. Apache, for a file modified within the
        last second, sends a weak tag and answers If-Range with its date by a 200 of the
        whole file: sent, it cost 4x the file."""
        if self.etag:
            return None if self.weak else self.etag
        return self.last_modified

    @classmethod
    def from_headers(cls, headers: Headers) -> Validators:
        etag = headers.get("etag")
        if etag is not None:
            etag = etag.strip() or None
        modified = headers.get("last-modified")
        if modified and not _is_http_date(modified):
            modified = None
        return cls(etag, modified)

    def same_as(self, other: Validators) -> bool:
        """True when ``other`` is shown to be this version: the ETags match weakly (RFC 9110
        §8.8.3.2), or, with no ETag on either side, the Last-Modified dates are equal. No
        validator in common proves nothing (False)."""
        if self.etag and other.etag:
            return _opaque(self.etag) == _opaque(other.etag)
        if self.etag or other.etag:
            return False
        return bool(self.last_modified) and self.last_modified == other.last_modified

    def conflicts_with(self, other: Validators) -> bool:
        """True when both sides know a validator of the same kind and they differ.

        ETags are compared weakly (RFC 9110 §8.8.3.2: same opaque-tag, weak or not), so that
        ``W/"1"`` → ``W/"2"`` is a new version, while ``"1"`` and ``W/"1"`` (a server that
        weakens its tag, e.g. after compressing) are the same one. Any difference of the
        tags means a change even when the size stayed: a weak tag cannot guard If-Range,
        so this comparison is the only thing that keeps two versions from being spliced.
        """
        if self.etag and other.etag:
            return _opaque(self.etag) != _opaque(other.etag)
        if self.last_modified and other.last_modified:
            return self.last_modified != other.last_modified
        return False


@functools.lru_cache(maxsize=256)
def _is_http_date(value: str) -> bool:
    """Whether ``value`` parses as a date (RFC 9110 §5.6.7). Kept for the values seen last:
    the files of one server share a handful of Last-Modified values, and email.utils'
    parser is the slowest step of checking a small file's answer."""
    from email.utils import parsedate_to_datetime

    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return True


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """'bytes 0-99/1000' → (0, 100, 1000): start, end exclusive, total (None for '*').
    None for anything else (a sign, Unicode digits, last < first); ProtocolViolation for a
    number of more than 19 digits (no file is that large; int() is never given it)."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if not match:
        return None
    longest = max(len(group) for group in match.groups())
    if longest > _MAX_DIGITS:
        raise ProtocolViolation(f"the server declared an impossible size ({longest} digits)")
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
    if value.isascii() and value.isdigit():  # "²".isdigit() is True, float("²") fails
        # No wish is honoured beyond a day (lifecycle caps it further); a 5,000-digit
        # number is never handed to int().
        return 86_400.0 if len(value) > 5 else float(min(int(value), 86_400))
    try:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
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
    *,
    whole: bool = False,
) -> Reply:
    """Check the answer to a request for ``[start, end)`` and describe its body as a Reply.

    The body is either the bytes asked for (``ranged``) or, on a 200, the whole file from
    offset 0 (``ranged`` False; :func:`require_ranged` says what that means). A 206 must start
    at ``start`` and end no later than ``end`` (the file's end when ``end`` is None); one that
    ends earlier, for the same total, is a *short* reply (``short``; a server that caps its
    bodies): its ``end`` is where it stops, and the caller asks for the rest with a new
    request, never taking it for the range asked. ``whole``: the request carried no Range.
    Raises FileChangedError when the server's validators or size contradict ``validators`` /
    ``size``, RangeError when a 206 is not the range asked for (UnknownSize for a ``*`` total
    to an open-ended range), ProtocolViolation for malformed numbers, and check_status's.
    """
    check_status(response)
    headers = response.headers
    seen = Validators.from_headers(headers)
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    encoded = encoding not in ("", "identity")
    final_url = str(response.url)
    if validators is not None and validators.conflicts_with(seen):
        raise FileChangedError("the file changed on the server (its validator differs)")
    length = content_length(headers)  # checked on every answer: a bad one is never framing

    if response.status_code == 416:
        unsatisfied = _UNSATISFIED_RANGE.match(headers.get("content-range") or "")
        total = int(unsatisfied.group(1)) if unsatisfied else None
        if total is not None:
            _check_declared_size(total)
        if start == 0 and total == 0:
            return Reply(response, final_url, 416, 0, 0, 0, False, seen, encoded)
        if size is not None and total is not None and total != size:
            raise FileChangedError(f"the file changed on the server (size {total}, was {size})")
        raise RangeError(f"the server refused the range {start}- (HTTP 416)")

    if response.status_code == 206:
        if whole:
            # RFC 9110 §15.3.7: 206 answers a Range request only.
            raise ProtocolViolation("the server sent a partial answer (206) to a plain GET")
        return _partial(response, start, end, size, seen, length, encoding, final_url)

    # 200: the whole file from byte 0.
    if encoded:
        length = None  # Content-Length counts encoded bytes, not the file's
    if size is not None and length is not None and length != size:
        raise FileChangedError(f"the file changed on the server (size {length}, was {size})")
    return Reply(response, final_url, 200, 0, length, length, False, seen, encoded)


def _partial(
    response: ResponseHead,
    start: int,
    end: int | None,
    size: int | None,
    seen: Validators,
    length: int | None,
    encoding: str,
    final_url: str,
) -> Reply:
    """A 206 (RFC 9110 §14.4, §15.3.7) checked against the range asked, ``[start, end)``."""
    raw = response.headers.get("content-range")
    parsed = parse_content_range(raw)
    if parsed is None and encoding not in ("", "identity"):
        # A coded range counts coded bytes (RFC 9110 §14.1.2), so its end may pass the file's
        # size: whatever it says, it cannot be spliced, and one stream will do instead.
        raise RangeError(f"a range encoded as {encoding} cannot be spliced")
    if parsed is None:
        shown = (raw or "")[:60]
        raise ProtocolViolation(f"the server sent a malformed Content-Range ({shown!r}) in a 206")
    got_start, got_end, total = parsed
    _check_declared_size(total if total is not None else got_end)
    if total is not None and size is not None and total != size:
        raise FileChangedError(f"the file changed on the server (size {total}, was {size})")
    if total is None and size is None:
        # "*" (§14.4): the length is unknown. Served up to got_end, the file may go on:
        # never taken for the whole file, whatever the body's length (nor, to a bounded
        # probe, for a file whose size is known).
        raise UnknownSize(
            f"the server sent bytes {got_start}-{got_end - 1} of a file of unknown size"
        )
    known = total if total is not None else size
    # A range past the end of the file is satisfied up to its end (§14.1.1: a last-pos at
    # or over the length means "to the end"): a file smaller than the probe's window comes
    # as ``bytes 0-(size-1)/size``, complete, not short.
    want_end = known if end is None else end if known is None else min(end, known)
    assert want_end is not None
    if got_start != start or got_end > want_end:
        raise RangeError(
            f"asked for bytes {start}-{want_end - 1}, the server sent {got_start}-{got_end - 1}"
        )
    if length is not None and length != got_end - got_start:
        raise RangeError("Content-Length does not match Content-Range")
    short = got_end < want_end
    encoded = encoding not in ("", "identity")
    if encoded:
        if got_start == 0 and got_end == known:
            # The whole encoded representation from byte 0 (ranges count encoded bytes,
            # RFC 9110 §14.1.2): it can be decoded as one stream, never split.
            return Reply(response, final_url, 206, 0, None, None, False, seen, True)
        raise RangeError(f"a range encoded as {encoding} cannot be spliced")
    return Reply(
        response, final_url, 206, got_start, got_end, known, True, seen, False, short=short
    )


class UnconditionalRange(RangeError):
    """A 200 to a range request with If-Range, carrying the very validators held (and the
    same size): the server will not serve that range conditionally (Apache takes a
    Last-Modified within a second of its clock as weak, RFC 9110 §8.8.2.2, and answers
    every If-Range with it by a 200, §13.1.5). The file did not change: the download goes
    on as one stream, as from a server that cannot split (lifecycle: ONE_STREAM), never
    spliced, never failed."""


def require_ranged(reply: Reply, validators: Validators, size: int | None) -> None:
    """A part of a file must come as a 206. A 200 to a request that carried If-Range means
    the file changed (RFC 9110 §13.1.5) — unless its validators are the ones held (weak
    comparison) and its size the file's: then the server only will not serve the range
    conditionally (UnconditionalRange). Either way it is never spliced into the old one.
    Without If-Range a 200 means the server cannot serve ranges at all."""
    if reply.ranged:
        return
    if validators.if_range():
        if validators.same_as(reply.validators) and size is not None and reply.size == size:
            raise UnconditionalRange(
                "the server will not serve a range of this file conditionally (If-Range "
                "answered with the same version): going on as one stream"
            )
        raise FileChangedError("the file changed on the server (If-Range did not match)")
    raise RangeError("the server answered a range request with the whole file")


def _check_declared_size(size: int) -> None:
    if size > MAX_DECLARED_SIZE:
        raise ProtocolViolation(f"the server declared an impossible size ({size} bytes)")
