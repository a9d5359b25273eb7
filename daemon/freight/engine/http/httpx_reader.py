"""One range request over httpx: redirects, proxies, encoded or unframed bodies, anything odd.

httpx is imported inside the functions: a download that the lean reader serves whole never
pays its import (~60 ms). This module maps httpx's errors into freight.errors at the
boundary. TLS is verified against the OS trust store (truststore), as the browser does, so
that corporate CAs work; ``insecure`` turns verification off for one download only.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from freight import __version__
from freight.engine.http.follow import Redirect, redirect_of
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.engine.http.validate import validate
from freight.errors import (
    ProtocolViolation,
    RemoteError,
    StalledError,
    ThrottledError,
    TransientError,
)

if TYPE_CHECKING:
    import ssl

    import httpx

USER_AGENT = f"Freight/{__version__}"


def mapped(chunks: Iterator[bytes]) -> Iterator[bytes]:
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
    """An HTTP/1.1 client: one TCP connection per range is what per-connection limits reward."""
    import httpx

    return httpx.Client(
        http1=True,
        http2=False,
        verify=ssl or ssl_context(insecure),
        follow_redirects=False,  # follow.fetch follows them, each hop's headers scoped
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


class Inflight:
    """A request that has no Reply yet, made abortable from another thread.

    httpx's read timeout applies to each read, so a server that dribbles its response head a
    byte at a time would hold a request forever. httpcore's ``trace`` extension tells us each
    socket it opens and when a head is awaited: a timer bounds the wait for each head
    (``head_timeout``, per redirect hop), and ``abort()`` (from the source's ``abort`` or
    that timer) shuts the socket down, which wakes the blocked read at once.
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


def _malformed_head(exc: Exception) -> str | None:
    """h11's reason when it refused the response head itself (a Content-Length of "²", "-5"
    or 5,000 digits, an illegal header line; RFC 9112 §6.3 makes them unrecoverable): the
    same ProtocolViolation the lean reader raises (validate.number), not a retry. A close
    inside the head stays a transient error."""
    import h11

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, h11.RemoteProtocolError):
            reason = str(seen)[:80]
            return None if "closed" in reason else reason
        seen = seen.__cause__ or seen.__context__
    return None


def open_range(
    client: httpx.Client,
    request: RangeRequest,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    inflight: Inflight | None = None,
    head_timeout: float | None = None,
) -> Reply | Redirect:
    """Make ``request`` (to ``url`` with ``headers``: one hop of follow.fetch; default the
    request's own) and check the answer (validate.validate); a Redirect for a redirect to
    follow (the client follows none itself: follow.py scopes each hop's headers).
    ``head_timeout`` bounds the wait for the response head; ``inflight`` lets another thread
    abort the wait. 1xx interim heads are skipped by httpcore (RFC 9110 §15.2).
    """
    import httpx

    url = url or request.url
    inflight = inflight or Inflight()
    if head_timeout is not None:
        inflight.head_timeout = head_timeout
    try:
        sent = client.build_request(
            "GET", url, headers=request.wire_headers(url) if headers is None else headers,
            extensions={"trace": inflight.trace},
        )
        response = client.send(sent, stream=True, follow_redirects=False)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: e.g. a "data:," redirect
        if inflight.timed_out:
            raise StalledError(
                f"no complete response head within {inflight.head_timeout:g}s"
            ) from exc
        malformed = _malformed_head(exc)
        if malformed is not None:
            raise ProtocolViolation(
                f"the server sent a malformed response head ({malformed})"
            ) from exc
        raise map_transport_error(exc) from exc
    except ValueError as exc:
        # h11 hands a Content-Length of thousands of digits to int(), which refuses it
        # (Python >= 3.11): a broken head, as validate.number says of ours.
        raise ProtocolViolation("the server sent an invalid response head") from exc
    finally:
        inflight.disarm()
    try:
        redirect = redirect_of(response.status_code, response.headers.get("location"))
        if redirect is not None:
            response.close()
            return redirect
        return validate(
            response, request.start, request.end, request.validators, request.size,
            whole=request.whole,
        )
    except BaseException:
        response.close()
        raise
