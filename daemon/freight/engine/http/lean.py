"""A lean HTTP/1.1 reader for the bulk of a download: one byte range, straight into a buffer.

httpx stays Freight's HTTP client for proxies and everything unusual. Most requests are
plain (RFC 9112): a request line, a few headers, a head to parse and then exactly
Content-Length bytes. httpx spends most of its CPU
per chunk in its HTTP/1.1 state machine and copies every chunk several times; this module
reads the body with ``recv_into`` into one reused buffer per connection, so the cost per byte
is a kernel copy and a ``pwrite``. The head it receives is checked by the very same code as
httpx's replies (validate.validate), so both paths keep the same rules. It does not import
httpx at all: a download that never needs httpx never pays its import (~60 ms, ~12 MiB).

A connection is kept open for the next range of the same worker when the previous body was
read to its end and the server did not say ``Connection: close`` (RFC 9112 §9.3).
A redirect comes back as a follow.Redirect (the source follows it, hop by hop, each hop's
headers for its origin); a 1xx interim head (RFC 9110 §15.2) is skipped. It falls back to
httpx (raises :class:`UseHttpx`) for anything it does not handle (a chunked or unframed body,
obsolete line folding); it is never used through a proxy.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

from freight.engine.http.follow import Redirect, redirect_of
from freight.engine.http.head import Head, UseHttpx, check_framing, is_interim, parse_head
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest, authority, percent_encoded
from freight.engine.http.validate import validate
from freight.errors import (
    FreightError,
    ProtocolViolation,
    RemoteError,
    StalledError,
    ThrottledError,
    TransientError,
)
from freight.headers import TOKEN

MAX_HEAD = 64 * 1024


#: Seconds a body chunk may wait in the read buffer for more bytes (see Connection.body);
#: the same as the unsynced progress record's interval (segmented.FAST_RECORD).
HAND_OVER = 0.02


def usable_for(url: str, *, proxies: bool | None = None) -> bool:
    """True when the URL can be fetched without httpx: http(s), an ASCII host, no proxy.
    ``proxies``: :func:`proxies_may_apply` as the caller found it once (the daemon's
    environment does not change), else looked at now."""
    try:
        scheme, host, _ = authority(url)
    except ValueError:
        return False  # a port that is no number: nothing to connect to
    if scheme not in ("http", "https") or not host or not host.isascii():
        return False
    if proxies is None:
        proxies = proxies_may_apply()
    if not proxies:
        return True
    import urllib.request

    proxies = urllib.request.getproxies()
    if scheme in proxies or "all" in proxies:
        return bool(urllib.request.proxy_bypass(host))
    return True


def proxies_may_apply() -> bool:
    """False when no proxy can be configured: on Linux and the BSDs urllib reads proxies only
    from *_proxy environment variables, so without one there is no need to load urllib.request
    (~4 ms of start-up); macOS and Windows also keep them in system settings."""
    if sys.platform in ("darwin", "win32"):
        return True
    return any(name.lower().endswith("_proxy") for name in os.environ)


def connect_error(exc: OSError, host: str, port: int) -> FreightError:
    """What a failed connect (or TLS handshake) means, for this reader and aio.py's."""
    if isinstance(exc, ConnectionRefusedError):
        return ThrottledError(f"connection refused by {host}:{port}")
    if isinstance(exc, TimeoutError):
        return TransientError(f"timed out connecting to {host}:{port}")
    verify_message = getattr(exc, "verify_message", None)  # ssl.SSLCertVerificationError
    if verify_message is not None:
        return RemoteError(f"TLS certificate not trusted: {verify_message}")
    return TransientError(f"cannot connect to {host}:{port}: {exc}")


class Connection:
    """One kept-alive connection of one worker (not thread-safe: one owner)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        stall_timeout: float,
        ssl_context: ssl.SSLContext | None,
        read_size: int,
        user_agent: str,
    ) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self.ssl_context = ssl_context
        self.user_agent = user_agent
        self.buffer = bytearray(read_size)
        self.sock: socket.socket | None = None
        self.reusable = False
        self.aborted = False  # a stop: never (re)connect again

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.scheme == "https":
                import ssl  # loaded only for TLS: a plain http download skips OpenSSL's setup

                context = self.ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.stall_timeout)
        except OSError as exc:
            raise connect_error(exc, self.host, self.port) from exc
        return sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.reusable = False

    def abort(self) -> None:
        """From another thread: wake a blocked recv (shutdown does, close may not)."""
        self.aborted = True  # before reading sock: request() sets sock, then checks this
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def request(self, url: str, headers: dict[str, str]) -> tuple[Head, memoryview]:
        """Send ``GET url`` with ``headers`` (Range among them); return the head (without a
        body), and the body bytes that arrived with the head."""
        url = percent_encoded(url)  # RFC 3986 §2.1: a raw "ü" goes as %C3%BC, as httpx sends
        payload = request_head(url, headers, self.user_agent)
        for attempt in (0, 1):
            fresh = self.sock is None or not self.reusable
            if fresh:
                self.close()
                self.sock = self._connect()
            if self.aborted:
                # A stop shut down the kept-alive socket under the request: that is no stale
                # connection to retry on a new one (whose head could take the stall timeout).
                self.close()
                raise TransientError("the connection was shut down")
            self.reusable = False
            assert self.sock is not None
            try:
                self.sock.sendall(payload)
                return self._read_head(url)
            except _StaleConnection:
                # A kept-alive connection the server had closed meanwhile: one fresh try.
                self.close()
                if fresh or attempt:
                    raise TransientError("the server closed the connection") from None
            except TimeoutError as exc:
                self.close()
                raise StalledError("no answer for too long") from exc
            except OSError as exc:
                self.close()
                raise TransientError(f"connection failed: {exc}") from exc
        raise TransientError("the server closed the connection")  # pragma: no cover

    def _read_head(self, url: str) -> tuple[Head, memoryview]:
        assert self.sock is not None
        view = memoryview(self.buffer)
        filled = 0
        # The whole head must come within twice the stall timeout, however slowly it trickles.
        deadline = time.monotonic() + 2 * self.stall_timeout
        interim = False  # a 1xx was read: a close now is no stale connection
        while True:
            end = self.buffer.find(b"\r\n\r\n", 0, filled) if filled else -1
            if end < 0:
                if filled >= min(MAX_HEAD, len(self.buffer)):
                    raise ProtocolViolation("response head too large")
                if time.monotonic() > deadline:
                    self.close()
                    raise StalledError("no complete response head in time")
                n = self.sock.recv_into(view[filled:])
                if n == 0:
                    if filled == 0 and not interim:
                        raise _StaleConnection()
                    raise TransientError("the connection closed inside the response head")
                filled += n
                continue
            response = parse_head(bytes(self.buffer[:end]), url)
            if is_interim(response):
                # The final head follows: skip this one, keep what came after it.
                rest = filled - (end + 4)
                self.buffer[:rest] = self.buffer[end + 4 : filled]
                filled, interim = rest, True
                continue
            break
        check_framing(response)
        # Copy the early body bytes out of the buffer: the buffer is reused for the body.
        early = memoryview(bytes(self.buffer[end + 4 : filled]))
        return response, early

    def body(self, early: memoryview, length: int, keep_alive: bool) -> Iterator[memoryview]:
        """Yield the ``length`` body bytes in chunks of at most the buffer size.

        Each chunk is valid only until the next one is asked for (the buffer is reused).
        """
        assert self.sock is not None
        sock, view, size = self.sock, memoryview(self.buffer), len(self.buffer)
        remaining = length
        if early:
            take = early[:remaining]
            remaining -= len(take)
            yield take
        try:
            while remaining > 0:
                want = min(size, remaining)
                filled = 0
                # Fill the buffer before yielding: fewer, larger pwrites cost less per byte.
                # On a slow link, hand over what came within HAND_OVER: bytes held here are
                # neither on disk nor in the progress record, and a kill loses them (at
                # 8 MiB/s a full 256 KiB buffer is 31 ms of data on every connection).
                hand_over = time.monotonic() + HAND_OVER
                while filled < want:
                    n = sock.recv_into(view[filled:want])
                    if n == 0:
                        raise TransientError(
                            f"the connection closed {remaining - filled} bytes early"
                        )
                    filled += n
                    if filled < want and time.monotonic() >= hand_over:
                        break
                remaining -= filled
                if remaining == 0:
                    # Every byte was read: the connection can carry the next request.
                    self.reusable = keep_alive and len(early) <= length
                yield view[:filled]
        except TimeoutError as exc:
            self.close()
            raise StalledError("no data for too long") from exc
        except OSError as exc:
            self.close()
            raise TransientError(f"connection failed: {exc}") from exc
        except BaseException:
            # Stopped early (a split, a stop, an error): unread bytes remain on the wire.
            if remaining > 0:
                self.close()
            raise
        self.reusable = keep_alive and len(early) <= length


#: Request headers the reader writes itself (RFC 9112 §3.2, §9.6; identity, request.py):
#: a download's own of these names is dropped, but for User-Agent, which replaces ours.
_OWN_HEADERS = frozenset({"host", "accept-encoding", "connection", "user-agent"})


def request_head(url: str, headers: dict[str, str], user_agent: str) -> bytes:
    """The bytes of ``GET url`` with ``headers`` (RFC 9112 §3): for the lean reader and the
    event loop's (aio.py) alike. ``url`` is already percent-encoded."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rpartition("@")[2]  # userinfo is never sent (request.py)
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        f"User-Agent: {user_agent}",
        "Accept-Encoding: identity",
    ]
    for name, value in headers.items():
        key = name.lower()
        if key in _OWN_HEADERS and key != "user-agent":
            continue
        # A line break would end the field early: the rest a header of its own (injection).
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ProtocolViolation(f"{_header_named(name)} holds a line break")
        if key == "user-agent":
            lines[2] = f"User-Agent: {value}"
        else:
            lines.append(f"{name}: {value}")
    try:
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="strict")
    except UnicodeEncodeError:
        # RFC 9110 §5.5: field values are octets; a character beyond Latin-1 has no
        # agreed encoding. The error names the header, never its value nor the head
        # (an encode error's own text and repr hold the whole head, cookies included).
        raise ProtocolViolation(
            f"{_beyond_latin1(lines)} holds a character beyond Latin-1, "
            "which HTTP cannot carry"
        ) from None
    return payload


def _header_named(name: str) -> str:
    """A header as an error may name it: by its name when that is a token (RFC 9110
    §5.6.2), never by its value."""
    return f"the {name} header" if TOKEN.match(name) else "a header"


def _beyond_latin1(lines: list[str]) -> str:
    """Which line of the request cannot be encoded, named as _header_named does."""
    for line in lines[1:]:
        if any(ord(c) > 0xFF for c in line):
            return _header_named(line.partition(":")[0])
    return "the request target"


class _StaleConnection(Exception):
    pass


#: A redirect's body up to this size is read and dropped to keep the connection; a larger
#: or unframed one closes it.
_REDIRECT_BODY = 64 * 1024


def open_range_lean(
    conn: Connection, request: RangeRequest, url: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply | Redirect:
    """Make ``request`` on ``conn`` (to ``url`` with ``headers``: one hop of follow.fetch;
    default the request's own) and check the answer as httpx's are checked; a Redirect for a
    redirect to follow; raises UseHttpx when httpx must make this request instead."""
    url = url or request.url
    response, early = conn.request(url, request.wire_headers(url) if headers is None else headers)
    try:
        answer = answer_of(response, request)
    except BaseException:
        conn.close()
        raise
    if isinstance(answer, Redirect):
        _drop_body(conn, response, early)
        return answer
    answer.conn, answer.early = conn, early
    return answer


def answer_of(response: Head, request: RangeRequest) -> Reply | Redirect:
    """What a final head means for ``request``, without I/O (this reader's and the event
    loop's, aio.py): a Redirect to follow, else the reply as validate.validate checks
    httpx's; UseHttpx for a body with no length to read to (one that ends with the
    connection) or bytes to decode: httpx's job. The caller keeps or closes its connection."""
    redirect = redirect_of(response.status_code, response.headers.get("location"))
    if redirect is not None:
        return redirect
    reply = validate(
        response, request.start, request.end, request.validators, request.size,
        whole=request.whole,
    )
    if reply.end is None or reply.encoded:
        raise UseHttpx("unframed or encoded body")
    return reply


def _drop_body(conn: Connection, response: Head, early: memoryview) -> None:
    """Read a redirect's small body to keep the connection for the next hop; else close."""
    length = response.headers.get("content-length") or ""  # read: ASCII digits, 6 at most
    if not (length.isascii() and length.isdigit() and len(length) <= 6) or (
        int(length) > _REDIRECT_BODY
    ):
        conn.close()
        return
    keep_alive = (response.headers.get("connection") or "").lower() != "close"
    try:
        for _ in conn.body(early, int(length), keep_alive):
            pass
    except FreightError:
        conn.close()  # the next hop opens a fresh connection
