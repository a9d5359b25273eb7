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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

from freight.engine.http.head import Head, check_framing, is_interim, parse_head
from freight.engine.http.lean import MAX_HEAD, connect_error, request_head
from freight.engine.http.request import percent_encoded
from freight.errors import ProtocolViolation, StalledError, TransientError

#: Seconds an idle connection is kept for the next download: under Apache's default
#: KeepAliveTimeout (5 s), so that most are still open when taken.
IDLE_KEEP = 4.0
#: Idle connections kept per origin, and in all.
IDLE_PER_ORIGIN = 16
IDLE_TOTAL = 64
#: Bytes asked of the socket per read of a body.
READ_SIZE = 256 * 1024
#: A redirect's body up to this size is read and dropped to keep the connection.
REDIRECT_BODY = 64 * 1024

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80)


class AioConnection:
    """One connection, owned by one download at a time."""

    def __init__(
        self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.reusable = False
        self.idle_since = 0.0

    def close(self) -> None:
        self.reusable = False
        self.writer.transport.abort()  # no FIN handshake to wait for: nothing more to say


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

    # -- connections -----------------------------------------------------------------------

    def _take_idle(self, origin: Origin) -> AioConnection | None:
        kept = self._idle.get(origin)
        now = self._clock()
        while kept:
            conn = kept.pop()
            self._idle_count -= 1
            if now - conn.idle_since < IDLE_KEEP and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin) -> AioConnection:
        scheme, host, port = origin
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, limit=MAX_HEAD,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except OSError as exc:  # TimeoutError among them
            raise connect_error(exc, host, port) from exc
        return AioConnection(origin, reader, writer)

    def give_back(self, conn: AioConnection) -> None:
        """A download is done with ``conn``: keep it for the next one when it may be reused."""
        kept = self._idle.setdefault(conn.origin, [])
        if not conn.reusable or len(kept) >= IDLE_PER_ORIGIN or self._idle_count >= IDLE_TOTAL:
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
            assert conn is not None
            try:
                conn.writer.write(payload)
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
        interim = False
        try:
            async with asyncio.timeout(2 * self.stall_timeout):
                while True:
                    try:
                        raw = await conn.reader.readuntil(b"\r\n\r\n")
                    except asyncio.IncompleteReadError as exc:
                        if not exc.partial and not interim:
                            raise _Stale() from None
                        raise TransientError(
                            "the connection closed inside the response head"
                        ) from None
                    except asyncio.LimitOverrunError:
                        raise ProtocolViolation("response head too large") from None
                    head = parse_head(raw[:-4], url)
                    if not is_interim(head):
                        break
                    interim = True
        except TimeoutError:
            raise StalledError("no complete response head in time") from None
        except ConnectionError as exc:
            if not interim:
                raise _Stale() from None
            raise TransientError(f"connection failed: {exc}") from exc
        check_framing(head)
        return head

    async def body(
        self, conn: AioConnection, head: Head, length: int,
        chunks: list[bytes] | None = None,
    ) -> bytes:
        """The ``length`` bytes of the body, each read within the stall timeout; the
        connection is reusable afterwards unless the server said ``Connection: close``.
        ``chunks``: where the bytes are gathered as they come (what a stop finds there is
        what arrived)."""
        chunks = [] if chunks is None else chunks
        remaining = length
        try:
            while remaining > 0:
                async with asyncio.timeout(self.stall_timeout):
                    chunk = await conn.reader.read(min(READ_SIZE, remaining))
                if not chunk:
                    raise TransientError(f"the connection closed {remaining} bytes early")
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError:
            conn.close()
            raise StalledError("no data for too long") from None
        except OSError as exc:
            conn.close()
            raise TransientError(f"connection failed: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        conn.reusable = (head.headers.get("connection") or "").lower() != "close"
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

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
