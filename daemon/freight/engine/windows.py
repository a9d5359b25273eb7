"""One worker's piece, window by window: the I/O half of the planner's windows (planner.py).

A worker of a segmented transfer (segmented.py) never asks for its whole piece: it asks for
a window (planner.window_size: about a second of its throughput), reads it to its end, and
asks for the next one on the same kept-alive connection (its Lane). No split cuts into a
window in flight, so the server never sends a byte that its reader will not keep, and a
speed limit never leaves a server writing into a socket that gets closed (issue 12: whole
segments cut by splits cost 1.25–3.6× the file). The only response that runs on past its
window is the probe's (asked with ``bytes=0-``): its connection is closed at the window's end.

Per chunk this costs what it did: the planner's claim and commit under the shared lock, one
pwrite; the window's bounds are local arithmetic. Per window: three clock reads.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from freight.engine.http.request import RangeRequest
from freight.engine.http.validate import require_ranged
from freight.engine.planner import Assignment, window_size
from freight.errors import RangeError, TransientError

if TYPE_CHECKING:
    from freight.engine.http.reply import Reply
    from freight.engine.http.source import Lane
    from freight.engine.segmented import Segmented

# The head latency estimate follows new observations with this weight (an exponential mean:
# one slow head does not stop every split, a server that turns slow is seen within a few).
LATENCY_WEIGHT = 0.3


def next_size(seg: Segmented, rate: float | None) -> int:
    """The next window's size (under the shared lock). Before a connection knows its rate, a
    speed limit tells it: its share of the limit, so that under a limit a stop leaves about a
    second of traffic unread, not whole segments."""
    s, planner = seg.shared, seg.planner
    connections = max(1, seg.goal.target)
    if rate is None:
        limits = [r for r in (s.limiter.rate, s.global_limiter.rate) if r is not None]
        if limits:
            rate = min(limits) / connections
    return window_size(
        rate, seg.latency, min_split=seg.settings.min_split_size,
        share=(planner.size - s.done) // connections,
    )


def fetch(seg: Segmented, assignment: Assignment, reply: Reply | None, lane: Lane) -> None:
    """Fetch the piece window by window on the lane's kept-alive connection; ``reply`` (the
    probe's) serves the first window."""
    s, planner, piece = seg.shared, seg.planner, assignment.piece_id
    rate: float | None = None
    try:
        while not s.stop.is_set() and s.fatal is None:
            with s.lock:
                span = planner.window(piece, next_size(seg, rate), rate)
            if span is None:
                return
            start, stop = span
            began = time.monotonic()
            if reply is None:
                reply = seg.source.open(
                    RangeRequest(seg.url, start, stop, seg.validators, s.size, seg.headers),
                    lane=lane,
                )
                saw_head(seg, time.monotonic() - began)
                require_ranged(reply, seg.validators)
                began = time.monotonic()
            stream(seg, reply, piece, start, stop)
            reply.close()
            reply = None
            elapsed = time.monotonic() - began
            if elapsed > 0:
                rate = (stop - start) / elapsed
    finally:
        if reply is not None:
            reply.close()


def saw_head(seg: Segmented, seconds: float) -> None:
    with seg.shared.lock:
        if seg.latency == 0:
            seg.latency = seconds
        else:
            seg.latency += LATENCY_WEIGHT * (seconds - seg.latency)


def stream(seg: Segmented, reply: Reply, piece: int, start: int, stop: int) -> None:
    """Copy the reply's body into ``[start, stop)`` of the piece (the window asked)."""
    s, planner, part = seg.shared, seg.planner, seg.part
    lock, halt = s.lock, s.stop
    if halt.is_set():
        return
    if reply.start != start:
        # Never write bytes at an offset they do not belong to.
        raise RangeError(f"a body from byte {reply.start} for a range at {start}")
    offset = start
    chunks = reply.chunks(seg.settings.read_size)
    try:
        for chunk in chunks:
            if halt.is_set() or s.fatal is not None:
                return
            n = len(chunk)
            if offset + n > stop:
                n = stop - offset  # the probe's body runs on past its first window
            with lock:
                allowed = planner.claim(piece, n)
            if allowed:
                s.throttle(allowed)
                part.pwrite(memoryview(chunk)[:allowed], offset)
                offset += allowed
                with lock:
                    planner.commit(piece, allowed)
                    s.done += allowed
                    s.failures = 0
                    s.had_data = True
            if offset >= stop or allowed < n:
                return
    except TransientError:
        if halt.is_set():
            return  # a stop shut the socket down under the read
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a body left unread closes its connection (lean.Connection.body)
    if halt.is_set():
        return
    if offset < stop:
        raise TransientError(f"the connection ended at byte {offset}, before its range did")
