"""The event loop's HTTP/1.1 reader: whole small files on the daemon's loop, without a thread.

A download known or likely to be small (engine/quick.py) is one request and a body of at most
``small_size`` bytes; a thread per such download cost more than the download (thread
hand-overs, bench/PROFILE.md §6). This reader makes that request on the loop with the very
rules of the lean reader: the same request bytes (lean.request_head), the same head parser
(head.parse_head) and the same check of the answer (lean.answer_of → validate.validate). It
reads only framed bodies (Content-Length); anything else is raised as UseHttpx and the
download goes to the threads' engine, which handles everything.

Connections are kept alive across downloads of one origin (RFC 9112 §9.3) in an
:class:`AioPool`: the next small file of the same host skips the TCP (and TLS) handshake.
A kept connection the server closed meanwhile is tried once more on a fresh one, as the lean
reader does. No timer runs while nothing is fetched: an idle connection is only looked at
when it is taken, and dropped then when it has idled longer than servers keep one
(:data:`IDLE_KEEP`).

The bytes are read by a buffered protocol (:class:`Wire`), not a StreamReader: the head
lands in a small buffer of the connection, and once its length is known the body is read by
the socket straight into one buffer of that length, the download's. A stream copied each
body three times on its way (into its buffer, out of it, into bytes) and woke the download
once per read; here the download waits once for the head and once for the rest of the body,
watched for a stall by one Watch of the pool, not a timer per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

from freight.engine.http.aiowire import HEAD_BUFFER, Watch, Wire
from freight.engine.http.head import Head, check_framing, is_interim, parse_head
from freight.engine.http.lean import connect_error, request_head
from freight.engine.http.request import authority, percent_encoded
from freight.errors import TransientError

#: Seconds an idle connection is kept for the next download: under Apache's default
#: KeepAliveTimeout (5 s), so that most are still open when taken.
IDLE_KEEP = 4.0
#: Idle connections kept per origin, and in all. Per origin as many as the small lane runs
#: at once to one host (the default max_host_connections): with fewer, every round of a
#: full lane closed the surplus and opened as many anew (a handshake each).
IDLE_PER_ORIGIN = 32
IDLE_TOTAL = 64
#: A redirect's body up to this size is read and dropped to keep the connection.
REDIRECT_BODY = 64 * 1024

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of ``url``, the default port made explicit."""
    scheme, host, port = authority(url)
    return scheme, host, port or (443 if scheme == "https" else 80)


class AioConnection:
    """One connection, owned by one download at a time."""

    def __init__(self, origin: Origin, wire: Wire) -> None:
        self.origin = origin
        self.wire = wire
        self.reusable = False
        self.idle_since = 0.0
        self.receiving: bytearray | None = None  # the body being read (AioPool.body)

    def received(self) -> bytes:
        """The bytes of the body being read that came so far (all of it once it came)."""
        body = self.receiving
        return bytes(memoryview(body)[: self.wire.got]) if body is not None else b""

    def received_count(self) -> int:
        return self.wire.got if self.receiving is not None else 0

    def close(self) -> None:
        self.reusable = False
        self.wire.done()
        if self.wire.transport is not None:
            self.wire.transport.abort()  # no FIN handshake to wait for: nothing more to say


class _Stale(Exception):
    """A kept connection that the server had closed before our request."""


class AioPool:
    """Connections of the loop's downloads, kept per origin between downloads."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        stall_timeout: float,
        user_agent: str,
        ssl_context: Callable[[], ssl.SSLContext],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self.user_agent = user_agent
        self._ssl_context = ssl_context
        self._clock = clock
        self._idle: dict[Origin, list[AioConnection]] = {}
        self._idle_count = 0
        self._watch: Watch | None = None  # made on the loop, with the first connection

    # -- connections -----------------------------------------------------------------------

    def _take_idle(self, origin: Origin) -> AioConnection | None:
        kept = self._idle.get(origin)
        now = self._clock()
        while kept:
            conn = kept.pop()
            self._idle_count -= 1
            # Bytes that came while it idled answer nothing we asked (a 408, garbage): a
            # request on it would take them for its answer.
            if now - conn.idle_since < IDLE_KEEP and not conn.wire.lost and not conn.wire.filled:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin) -> AioConnection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        if self._watch is None:
            self._watch = Watch(loop, self.stall_timeout)
        wire = Wire(loop, self._watch)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await loop.create_connection(
                    lambda: wire, host, port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except OSError as exc:  # TimeoutError among them
            raise connect_error(exc, host, port) from exc
        return AioConnection(origin, wire)

    def give_back(self, conn: AioConnection) -> None:
        """A download is done with ``conn``: keep it for the next one when it may be reused."""
        kept = self._idle.setdefault(conn.origin, [])
        if (
            not conn.reusable or conn.wire.lost or conn.wire.filled
            or len(kept) >= IDLE_PER_ORIGIN or self._idle_count >= IDLE_TOTAL
        ):
            conn.close()
            return
        conn.idle_since = self._clock()
        kept.append(conn)
        self._idle_count += 1

    def close(self) -> None:
        for kept in self._idle.values():
            for conn in kept:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    # -- one exchange ----------------------------------------------------------------------

    async def request(
        self, url: str, headers: dict[str, str]
    ) -> tuple[AioConnection, Head]:
        """Send ``GET url`` with ``headers`` on a kept or new connection of its origin; the
        connection (now the caller's: give it back or close it) and the final head."""
        url = percent_encoded(url)  # RFC 3986 §2.1, as the lean reader sends it
        payload = request_head(url, headers, self.user_agent)
        origin = origin_of(url)
        conn = self._take_idle(origin)
        for fresh in ((False, True) if conn is not None else (True,)):
            if fresh:
                conn = await self._connect(origin)
            assert conn is not None and conn.wire.transport is not None
            try:
                conn.reusable = False
                conn.receiving = None
                conn.wire.arm()
                conn.wire.transport.write(payload)
                return conn, await self._head(conn, url)
            except _Stale:
                conn.close()
                if fresh:
                    raise TransientError("the server closed the connection") from None
            except BaseException:
                conn.close()
                raise
        raise TransientError("the server closed the connection")  # pragma: no cover

    async def _head(self, conn: AioConnection, url: str) -> Head:
        """The final head (a 1xx interim one skipped, RFC 9110 §15.2), within twice the stall
        timeout however slowly it trickles, as the lean reader's."""
        wire = conn.wire
        interim = False
        while True:
            end = wire.head_end()
            if end < 0:
                if wire.error is not None:
                    raise wire.error
                if wire.lost:
                    if wire.filled == wire.pos and not interim:
                        raise _Stale()  # closed (or reset) before a byte of an answer
                    if isinstance(wire.lost_error, OSError):
                        raise TransientError(f"connection failed: {wire.lost_error}")
                    raise TransientError("the connection closed inside the response head")
                await wire.wait()  # raises StalledError when the Watch says so
                continue
            head = parse_head(bytes(memoryview(wire.buf)[wire.pos:end]), url)
            wire.pos = wire.scanned = end + 4
            if not is_interim(head):
                break
            interim = True  # the final head follows (what came after this one is kept)
        wire.want_head = False
        check_framing(head)
        return head

    async def body(
        self, conn: AioConnection, head: Head, length: int,
        slow: tuple[float, Callable[[], None]] | None = None,
    ) -> bytearray:
        """The ``length`` bytes of the body, with no stall longer than the stall timeout; the
        connection is reusable afterwards unless the server said ``Connection: close``.
        ``slow``: (seconds, call) — ``call`` is made once the body has taken that long (by
        the pool's Watch: up to aiowire.LONGEST_TICK later).
        What came of the body meanwhile is ``conn.received()`` (what a stop finds there)."""
        wire = conn.wire
        body = conn.receiving = bytearray(length)
        early = wire.filled - wire.pos
        took = min(early, length)
        if took:
            body[:took] = memoryview(wire.buf)[wire.pos : wire.pos + took]
        if early > length:  # bytes past the end of the body (RFC 9112 §6.3): never reused
            conn.close()
            return body
        wire.pos = wire.filled = wire.scanned = 0  # the buffer is free for the next head
        if len(wire.buf) > HEAD_BUFFER:  # grown for a large head: an idle one stays small
            wire.buf = bytearray(HEAD_BUFFER)
        wire.got = took
        if took < length:
            wire.body = body
            wire.resume()
            if slow is not None:  # made by the Watch: no timer of its own per body
                wire.slow_at, wire.slow = wire.loop.time() + slow[0], slow[1]
            try:
                while wire.body is not None:
                    if wire.lost:
                        if isinstance(wire.lost_error, OSError):
                            raise TransientError(f"connection failed: {wire.lost_error}")
                        raise TransientError(
                            f"the connection closed {length - wire.got} bytes early"
                        )
                    await wire.wait()  # raises StalledError when the Watch says so
            except BaseException:
                conn.close()
                raise
            finally:
                wire.slow = None
        else:
            wire.resume()
            wire.done()
        conn.reusable = (head.headers.get("connection") or "").lower() != "close"
        return body

    async def drop_redirect_body(self, conn: AioConnection, head: Head) -> None:
        """Read a redirect's small body to keep its connection for the next hop; else close."""
        length = head.headers.get("content-length") or ""
        if length.isascii() and length.isdigit() and len(length) <= 6 and (
            int(length) <= REDIRECT_BODY
        ):
            try:
                await self.body(conn, head, int(length))
            except TransientError:
                conn.close()
                return
            self.give_back(conn)
            return
        conn.close()
