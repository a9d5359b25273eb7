"""One HTTP request for one byte range, validated; over httpx or the lean reader (wire.py).

The rules (RFC 9110):
- §14.2 Range: we ask ``bytes=START-`` or ``bytes=START-LAST`` (LAST inclusive).
- §13.1.5 If-Range: every request for a part of a file we already have carries the strong
  ETag (else the Last-Modified date) we saw first. A server whose file changed then sends the
  whole new file with 200 instead of a 206 we would splice into the old one.
- §14.4 Content-Range: a 206 must describe exactly the range we asked for and the size we
  know; anything else is refused before a byte is written.
- §15.5.17 416: ``Content-Range: bytes */0`` to ``bytes=0-`` is how a zero-byte file answers.
- §8.8.3 ETag: a weak validator (``W/"..."``) cannot be used with If-Range; it is ignored.

This module maps httpx's errors into freight.errors at the boundary.
"""

from __future__ import annotations

import errno
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from freight import __version__
from freight.engine.http import lean as wire
from freight.errors import (
    FileChangedError,
    HTTPStatusError,
    ProtocolViolation,
    RangeError,
    RemoteError,
    StalledError,
    ThrottledError,
    TransientError,
)

if TYPE_CHECKING:
    import ssl

    import httpx

USER_AGENT = f"Freight/{__version__}"


class Headers(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


class ResponseHead(Protocol):
    """What validation needs of a response: an httpx.Response or a lean wire.Head."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def headers(self) -> Any: ...

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


@dataclass(eq=False)  # hashed by identity: the transfer keeps a set of open replies
class Reply:
    """An open response to a range request; ``close()`` it when done."""

    response: Any  # httpx.Response, or wire.Head when the lean reader made the request
    url: str  # after redirects
    status: int
    start: int  # offset of the body's first byte in the file
    end: int | None  # exclusive end of the body's bytes, None when unknown
    size: int | None  # the whole file's size, None when unknown
    ranged: bool  # a 206: the server honours ranges
    validators: Validators
    encoded: bool  # a Content-Encoding other than identity: bytes are not the file's
    conn: wire.Connection | None = None  # set when the lean reader made the request
    early: memoryview | None = None  # body bytes that came with the head (lean reader)

    def chunks(self, read_size: int) -> Iterator[bytes | memoryview]:
        """The body in chunks; a chunk may be reused after the next one is asked for."""
        if self.conn is not None:
            assert self.end is not None
            keep_alive = self.response.headers.get("connection", "").lower() != "close"
            return self.conn.body(self.early or memoryview(b""), self.end - self.start, keep_alive)
        if self.encoded:
            return _mapped(self.response.iter_bytes(read_size))
        return _mapped(self.response.iter_raw(read_size))

    def abort(self) -> None:
        """From another thread: wake the reader blocked on this reply's socket."""
        if self.conn is not None:
            self.conn.abort()
            return
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def content_disposition(self) -> str | None:
        return self.response.headers.get("content-disposition")

    @property
    def content_type(self) -> str | None:
        return self.response.headers.get("content-type")

    def close(self) -> None:
        if self.conn is None:
            self.response.close()


def _mapped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """httpx's body iterator with its errors mapped into ours."""
    import httpx

    try:
        yield from chunks
    except httpx.HTTPError as exc:
        raise map_transport_error(exc) from exc


def ssl_context(insecure: bool = False) -> ssl.SSLContext:
    """The OS trust store (truststore), as the browser uses; no verification only if asked."""
    import ssl  # here, not at the top: a plain http download never loads OpenSSL's TLS

    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        import truststore

        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    except Exception:  # pragma: no cover - platforms without a usable OS store
        return ssl.create_default_context()


def make_client(
    *,
    connect_timeout: float,
    stall_timeout: float,
    max_redirects: int,
    connections: int,
    insecure: bool = False,
    ssl: ssl.SSLContext | None = None,
) -> httpx.Client:
    import httpx

    """An HTTP/1.1 client: one TCP connection per range is what per-connection limits reward.

    TLS is verified against the OS trust store (truststore), as the browser does, so that
    corporate CAs work; ``insecure`` turns verification off for one download only.
    """
    return httpx.Client(
        http1=True,
        http2=False,
        verify=ssl or ssl_context(insecure),
        follow_redirects=True,
        max_redirects=max_redirects,
        trust_env=True,
        timeout=httpx.Timeout(
            connect=connect_timeout, read=stall_timeout, write=stall_timeout, pool=None
        ),
        limits=httpx.Limits(
            max_connections=None, max_keepalive_connections=max(1, connections)
        ),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


def map_transport_error(exc: Exception) -> RemoteError:
    """httpx's errors → ours. Timeouts while reading are stalls; refusals are throttling."""
    import httpx

    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return StalledError(f"no data for too long ({exc.__class__.__name__})")
    if isinstance(exc, httpx.TooManyRedirects):
        return ProtocolViolation(f"too many redirects: {exc}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ProtocolViolation(f"unsupported URL or redirect: {exc}")
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED or (
            "refused" in str(exc).lower()
        ):
            return ThrottledError(f"connection refused: {exc}")
        return TransientError(f"cannot connect: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"timed out: {exc.__class__.__name__}")
    if isinstance(exc, httpx.HTTPError):
        return TransientError(f"connection failed: {exc or exc.__class__.__name__}")
    return TransientError(f"connection failed: {exc!r}")


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


class Inflight:
    """A request that has no Reply yet, made abortable from another thread.

    httpx's read timeout applies to each read, so a server that dribbles its response head a
    byte at a time would hold a request forever. httpcore's ``trace`` extension tells us each
    socket it opens and when a head is awaited: a timer bounds the wait for each head
    (``head_timeout``, per redirect hop), and ``abort()`` (from ``Transfer.stop`` or that
    timer) shuts the socket down, which wakes the blocked read at once.
    """

    def __init__(self, head_timeout: float | None = None) -> None:
        self.head_timeout = head_timeout
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self.aborted = False
        self.timed_out = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                    aborted = self.aborted
                if aborted:
                    _shutdown(sock)
        elif event == "http11.send_request_headers.started" and self.head_timeout:
            self._arm()
        elif event == "http11.receive_response_headers.complete":
            self.disarm()

    def _arm(self) -> None:
        self.disarm()
        timer = threading.Timer(self.head_timeout or 0, self._expire)
        timer.daemon = True
        with self._lock:
            self._timer = timer
        timer.start()

    def _expire(self) -> None:
        self.timed_out = True
        self.abort()

    def disarm(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def open_range(
    client: httpx.Client,
    url: str,
    start: int,
    end: int | None,
    *,
    validators: Validators | None = None,
    size: int | None = None,
    headers: dict[str, str] | None = None,
    inflight: Inflight | None = None,
    head_timeout: float | None = None,
) -> Reply:
    """Request ``[start, end)`` of ``url`` (``end`` None: to the end) and check the answer.

    Returns a Reply whose body is either exactly the bytes asked for (``ranged``) or, on a
    200, the whole file from offset 0 (``ranged`` False; the caller decides what to do: a
    200 to a request with If-Range means the file changed, RFC 9110 §13.1.5).
    Raises FileChangedError when the server's validators or size contradict ``validators`` /
    ``size``, RangeError when a 206 is not the range asked for, and the errors of
    check_status / map_transport_error. ``head_timeout`` bounds the wait for the whole
    response head (redirects included); ``inflight`` lets another thread abort the wait.
    """
    import httpx

    request_headers: dict[str, str] = dict(headers or {})
    request_headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
    if validators is not None and validators.if_range():
        request_headers["If-Range"] = validators.if_range() or ""
    inflight = inflight or Inflight()
    if head_timeout is not None:
        inflight.head_timeout = head_timeout
    try:
        request = client.build_request(
            "GET", url, headers=request_headers, extensions={"trace": inflight.trace}
        )
        response = client.send(request, stream=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: e.g. a "data:," redirect
        if inflight.timed_out:
            raise StalledError(
                f"no complete response head within {inflight.head_timeout:g}s"
            ) from exc
        raise map_transport_error(exc) from exc
    finally:
        inflight.disarm()
    try:
        return _validate(response, start, end, validators, size)
    except BaseException:
        response.close()
        raise


def open_range_lean(
    conn: wire.Connection,
    url: str,
    start: int,
    end: int | None,
    *,
    validators: Validators | None = None,
    size: int | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """open_range through the lean reader (wire.py); raises wire.UseHttpx to fall back."""
    request_headers = dict(headers or {})
    if validators is not None and validators.if_range():
        request_headers["If-Range"] = validators.if_range() or ""
    response, early = conn.request(url, start, end, request_headers)
    try:
        reply = _validate(response, start, end, validators, size)
    except BaseException:
        conn.close()
        raise
    if reply.end is None or reply.encoded:
        # No length to read to (a body that ends with the connection), or bytes to decode:
        # httpx's job.
        conn.close()
        raise wire.UseHttpx("unframed or encoded body")
    reply.conn, reply.early = conn, early
    return reply


def _validate(
    response: ResponseHead,
    start: int,
    end: int | None,
    validators: Validators | None,
    size: int | None,
) -> Reply:
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


def _check_declared_size(size: int) -> None:
    if size > MAX_DECLARED_SIZE:
        raise ProtocolViolation(f"the server declared an impossible size ({size} bytes)")


def describe(reply: Reply) -> dict[str, Any]:
    """A few facts about a reply for logs."""
    return {
        "status": reply.status,
        "url": reply.url,
        "size": reply.size,
        "ranged": reply.ranged,
        "etag": reply.validators.etag,
    }
