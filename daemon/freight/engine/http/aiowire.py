"""The reading side of one connection of the event loop's reader (aio.py): a buffered protocol.

asyncio's StreamReader copies every body three times on its way (into its buffer, out of
it, into bytes) and wakes its reader once per read, under a timer per read. A
:class:`Wire` lets the socket write the head into a small buffer of the connection and,
once the body's length is known (AioPool.body), the rest of the body straight into one
buffer of that length, the download's; the download is woken once for the head and once
for the body. The stall rules of the lean reader (a whole head within twice the stall
timeout, no silence longer than it in a body) are kept by one :class:`Watch` of the pool,
not a timer per request: while a request is under way it looks at them every
:data:`LONGEST_TICK` seconds (an eighth of the stall timeout when that is shorter), so a
stall, or a slow body's call, is told at most that late; with none under way it sleeps.

Bytes that come when no request asks for them (while the connection idles, or past the end
of a body, RFC 9112 §6.3) are kept in the buffer, where the pool sees them and never reuses
the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from freight.engine.http.lean import MAX_HEAD
from freight.errors import ProtocolViolation, StalledError

#: Bytes of a connection's buffer for a head (it grows to MAX_HEAD for a larger one). What
#: comes after the head in it is copied into the body: small, so that the rest of a body is
#: read straight into the download's buffer.
HEAD_BUFFER = 8 * 1024
#: How often per stall timeout the Watch looks at the requests under way, and the longest
#: time between two looks (a slow body's call, AioPool.body, comes at most that late).
TICKS_PER_STALL = 8
LONGEST_TICK = 0.125


class Watch:
    """The requests under way of one pool, looked at now and then for a stall."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stall_timeout: float) -> None:
        self.loop = loop
        self.stall = stall_timeout
        self.tick = min(LONGEST_TICK, stall_timeout / TICKS_PER_STALL)
        self.busy: set[Wire] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, wire: Wire) -> None:
        self.busy.add(wire)
        if self._timer is None:
            self._timer = self.loop.call_later(self.tick, self._look)

    def _look(self) -> None:
        # Set again first: a slow call that raised must not end the watch of the others.
        self._timer = self.loop.call_later(self.tick, self._look)
        now = self.loop.time()
        for wire in list(self.busy):
            wire.check(now)
        if not self.busy:
            self._timer.cancel()
            self._timer = None


class Wire(asyncio.BufferedProtocol):
    """The reading side of one connection: the bytes of a head (``buf[pos:filled]``), then of
    a body (``body[:got]``), and the one download waiting for them, if any (``waiter``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, watch: Watch) -> None:
        self.loop = loop
        self.watch = watch
        self.stall = watch.stall
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray(HEAD_BUFFER)
        self.pos = 0  # the first byte not taken yet
        self.filled = 0
        self.scanned = 0  # no head's end before this offset
        self.want_head = False  # a request was sent and its final head has not been taken
        self.body: bytearray | None = None  # the body being read, while bytes of it are due
        self.got = 0  # bytes of ``body`` that came
        self.waiter: asyncio.Future[None] | None = None
        self.lost = False
        self.lost_error: BaseException | None = None
        self.error: Exception | None = None  # a head too large: nothing more is read
        self.paused = False
        self.began = 0.0  # when the request was sent
        self.last_data = 0.0
        self.slow: Callable[[], None] | None = None  # called once a body takes until slow_at
        self.slow_at = 0.0

    # -- asyncio.BufferedProtocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        body = self.body
        if body is not None:
            return memoryview(body)[self.got:]  # straight into the download's buffer
        if self.filled == len(self.buf):  # a large head, or the start of a body before body()
            # (past MAX_HEAD reading is paused: this is never called then)
            grown = bytearray(2 * len(self.buf))
            grown[: self.filled] = self.buf
            self.buf = grown
        return memoryview(self.buf)[self.filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self.last_data = self.loop.time()
        body = self.body
        if body is not None:
            self.got += nbytes
            if self.got == len(body):
                self.body = None
                self._body_complete()
            return
        self.filled += nbytes
        # The buffer grows (get_buffer) while it holds less than MAX_HEAD bytes; full past
        # that, nothing more is read until body() takes them or the head is too large.
        full = self.filled == len(self.buf) and self.filled >= MAX_HEAD
        if not self.want_head:  # the start of a body before body() (or bytes nobody asked)
            if full:
                self._pause()
            return
        if self.waiter is None and self.filled < MAX_HEAD:
            return  # the download looks for the head itself when it asks
        if self.head_end() >= 0:
            if full:
                self._pause()
            self._wake()
        elif self.filled - self.pos >= MAX_HEAD:
            self.error = ProtocolViolation("response head too large")
            self._pause()
            self._wake()

    def eof_received(self) -> bool:
        self.lost = True
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.lost_error = True, exc
        self.done()
        self._wake()

    # -- for the pool --------------------------------------------------------------------

    def head_end(self) -> int:
        """Where the head in the buffer ends (its blank line), -1 while it has not all come."""
        end = self.buf.find(b"\r\n\r\n", max(self.pos, self.scanned - 3), self.filled)
        self.scanned = self.filled if end < 0 else end
        return end

    def arm(self) -> None:
        """A request is sent: watched for a stall until its body has come (done())."""
        self.want_head = True
        self.began = self.last_data = self.loop.time()
        self.watch.add(self)

    def done(self) -> None:
        self.watch.busy.discard(self)

    async def wait(self) -> None:
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    def check(self, now: float) -> None:
        """The Watch looks: a body's slow call is made when due, and a download waiting too
        long is told so (StalledError)."""
        if self.lost:
            self.done()
            return
        if self.slow is not None and now >= self.slow_at:
            call, self.slow = self.slow, None
            call()
        if self.waiter is None or self.waiter.done():
            return  # between the head and body(): not waiting for the server
        if self.want_head:  # the whole head within twice the stall timeout, as lean's
            due, error = self.began + 2 * self.stall, "no complete response head in time"
        else:
            due, error = self.last_data + self.stall, "no data for too long"
        if now >= due:
            self.waiter.set_exception(StalledError(error))

    def _body_complete(self) -> None:
        self.done()
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _pause(self) -> None:
        if not self.paused and self.transport is not None and not self.lost:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if self.transport is not None and not self.lost:
                self.transport.resume_reading()
