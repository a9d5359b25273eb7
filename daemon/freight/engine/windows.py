"""One worker's piece, window by window: the I/O half of the planner's windows (planner.py).

A worker of a segmented transfer (segmented.py) never asks for its whole piece: it asks for
a window (planner.window_size: about a second of its throughput), reads it to its end, and
asks for the next one on the same kept-alive connection (its Lane). No split cuts into a
window in flight, so the server never sends a byte that its reader will not keep, and a
speed limit never leaves a server writing into a socket that gets closed (issue 12: whole
segments cut by splits cost 1.25–3.6× the file). The probe is bounded too (``bytes=0-(W-1)``,
transfer.probe_window): its reply is the first piece's first window, read to its end, and its
kept-alive connection asks for the next ones (an open-ended probe cost 1.35-1.98× the file
on real servers: what they had pushed past the window was thrown away with the socket).

Per chunk this costs what it did: the planner's claim and commit under the shared lock, one
pwrite; the window's bounds are local arithmetic. Per window: three clock reads.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from freight.engine.http.request import RangeRequest
from freight.engine.http.validate import require_ranged
from freight.engine.planner import Assignment, window_size
from freight.errors import RangeError, TransientError

if TYPE_CHECKING:
    from freight.engine.http.reply import Reply
    from freight.engine.http.source import Lane
    from freight.engine.segmented import Segmented, Surplus

# The head latency estimate follows new observations with this weight (an exponential mean:
# one slow head does not stop every split, a server that turns slow is seen within a few).
LATENCY_WEIGHT = 0.3


def next_size(seg: Segmented, rate: float | None) -> int:
    """The next window's size (under the shared lock). Under a speed limit a connection gets
    at most its share of the limit, whatever it measured (a window read from the limiter's
    burst looks fast), so that a stop leaves about a second of traffic unread, not whole
    segments pushed into socket buffers."""
    s, planner = seg.shared, seg.planner
    limits = [r for r in (s.limiter.rate, s.global_limiter.rate) if r is not None]
    if limits:
        share = min(limits) / max(1, s.alive, seg.goal.target)
        rate = share if rate is None else min(rate, share)
    # While the connection count may still grow, the share is the most it may grow to:
    # windows that covered the whole file would leave the new connections nothing to split.
    goal = seg.goal
    connections = goal.target if goal.frozen else max(goal.target, goal.ceiling)
    return window_size(
        rate, seg.latency, min_split=seg.settings.min_split_size,
        share=(planner.size - s.done) // max(1, connections),
    )


def fetch(
    seg: Segmented, assignment: Assignment, reply: Reply | None, lane: Lane
) -> Surplus | None:
    """Fetch the piece window by window on the lane's kept-alive connection; ``reply`` (the
    probe's) serves the first windows, as long as no split ends the piece before it does.
    Returns why the worker must end before the piece does (Segmented.surplus), if it must."""
    s, planner, piece = seg.shared, seg.planner, assignment.piece_id
    rate: float | None = None
    chunks: Iterator[bytes | memoryview] | None = None
    left: memoryview | None = None  # read past the last window: the next one's first bytes
    try:
        while not s.stop.is_set() and s.fatal is None:
            if rate is not None:  # a window is done: is this connection one too many?
                surplus = seg.surplus()
                if surplus is not None:
                    return surplus
            with s.lock:
                if reply is not None and reply.end is not None and chunks is None:
                    # The probe's reply: its window is what it was asked for, no more.
                    n = max(1, reply.end - assignment.start)
                else:
                    n = next_size(seg, rate)
                span = planner.window(piece, n, rate)
            if span is None:
                return None
            start, stop = span
            began = time.monotonic()
            if reply is None:
                reply = seg.source.open(
                    RangeRequest(seg.url, start, stop, seg.validators, s.size, seg.headers),
                    lane=lane,
                )
                saw_head(seg, time.monotonic() - began)
                require_ranged(reply, seg.validators, s.size)
                began = time.monotonic()
            if chunks is None:
                if reply.start != start:
                    # Never write bytes at an offset they do not belong to.
                    raise RangeError(f"a body from byte {reply.start} for a range at {start}")
                chunks = reply.chunks(seg.settings.read_size)
            left = stream(seg, chunks, left, piece, start, stop)
            if s.stop.is_set():
                return None
            if reply.end is None or reply.end <= stop:
                _close(chunks)  # read to its end: the connection serves the next window
                reply.close()
                reply, chunks = None, None
            elapsed = time.monotonic() - began
            rate = (stop - start) / elapsed if elapsed > 0 else float(stop - start)
        return None
    finally:
        if chunks is not None:
            _close(chunks)  # a body left unread closes its connection (lean.Connection.body)
        if reply is not None:
            reply.close()


def _close(chunks: Iterator[bytes | memoryview]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def saw_head(seg: Segmented, seconds: float) -> None:
    with seg.shared.lock:
        if seg.latency == 0:
            seg.latency = seconds
        else:
            seg.latency += LATENCY_WEIGHT * (seconds - seg.latency)


def stream(
    seg: Segmented,
    chunks: Iterator[bytes | memoryview],
    left: memoryview | None,
    piece: int,
    start: int,
    stop: int,
) -> memoryview | None:
    """Copy the body into ``[start, stop)`` of the piece (the window asked), ``left`` (bytes
    read before) first; returns the bytes read past ``stop`` (the probe's body runs on)."""
    s, planner, part = seg.shared, seg.planner, seg.part
    lock, halt = s.lock, s.stop
    offset = start
    try:
        for chunk in chunks if left is None else itertools.chain((left,), chunks):
            if halt.is_set() or s.fatal is not None:
                return None
            n = len(chunk)
            if offset + n > stop:
                n = stop - offset
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
            if allowed < n:
                break  # cannot be (no split cuts a window), but never write past the piece
            if offset >= stop:
                return memoryview(chunk)[n:] if n < len(chunk) else None
    except TransientError:
        if halt.is_set():
            return None  # a stop shut the socket down under the read
        raise
    if halt.is_set():
        return None
    raise TransientError(f"the connection ended at byte {offset}, before its range did")
