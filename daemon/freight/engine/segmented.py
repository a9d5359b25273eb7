"""A segmented transfer: worker threads stream byte ranges into ``NAME.part``; the thread that
runs it is the control loop.

Rules it keeps (lifecycle.py decides what a failure means; http/validate.py checks replies):
- A body is written only at the offset it starts at (checked again before the first write),
  and only as far as the planner's claim allows: a split may have moved the piece's end.
- Recorded progress never exceeds what is on disk: a checkpoint snapshots the committed
  ranges, ``fdatasync``s, then records them (store.save_progress) in one transaction. Between
  two checkpoints, what ``pwrite`` handed to the kernel is recorded without a sync every
  ``FAST_RECORD`` seconds, valid only for this boot (store.save_fast_progress).
- A worker asks for a window of its piece at a time (planner.window_size: about a second
  of its throughput), the next one on the same kept-alive connection, and a split never cuts
  into a window in flight: the server never sends a byte twice, and a speed limit never
  leaves it writing into a socket that gets closed (issue 12).
- Workers never exceed their host's free connection slots (limits.HostCaps): the control
  loop takes a slot before it starts a worker, and when none is free it waits for a release
  (or for its tick) instead of starting threads that give up at once. A 429/503 or a
  refused connection lowers the cap and surplus workers retire; the cap recovers later.
- Every stop ends within a second: waits for a head or a body end at the source's abort,
  backoffs and speed-limit waits at the stop event, and no worker waits for a slot.
- Memory is connections × ``read_size``: one chunk per connection at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal
from urllib.parse import urlsplit

from freight.engine import lifecycle, windows
from freight.engine.adaptive import ConnectionGoal
from freight.engine.http.reply import Reply
from freight.engine.http.source import Lane
from freight.engine.limits import HostCaps
from freight.engine.planner import Assignment, Planner
from freight.engine.shared import Attempt, Shared
from freight.errors import FreightError, TransientError

log = logging.getLogger("freight.transfer")

_TICK = 0.1  # control loop period, seconds
# Progress written but not yet synced is recorded this often (see Store.save_fast_progress):
# a SIGKILL then loses at most this much time's worth of bytes, not a checkpoint interval's.
FAST_RECORD = 0.02
# Adaptive connection count (adaptive.py): every window, while the last step paid, double the
# connections (up to max_connections). Doubling, not adding: a fast link finishes big files in
# seconds, so a slow additive climb would never get there.
_ADAPT_WINDOW = 0.1  # seconds between two decisions on the connection count

#: The probe's reply, the lane it came through and the piece it starts.
First = tuple[Reply, Lane, Assignment]
#: Why a worker ends early: its host is over its cap, or its download over its count.
Surplus = Literal["slot", "count"]


class Segmented:
    """One segmented attempt over ``planner``: :meth:`run` returns when the file is complete,
    raises Stopped, the attempt's fatal error, or TransientError when it stopped short."""

    def __init__(
        self,
        shared: Shared,
        attempt: Attempt,
        *,
        planner: Planner,
        hosts: HostCaps,
        boot: str | None,
    ) -> None:
        self.shared = shared
        self.id = attempt.download_id
        self.settings = settings = attempt.settings
        self.store = attempt.store
        self.source = attempt.source
        self.part = attempt.part
        self.planner = planner
        self.hosts = hosts
        self.url = attempt.url
        self.host = urlsplit(attempt.url).hostname or ""
        self.validators = attempt.validators
        self.headers = attempt.headers
        self.boot = boot
        self.policy = lifecycle.Policy.from_settings(settings)
        self.goal = ConnectionGoal(
            settings.connections, settings.max_connections, settings.adaptive,
            window=_ADAPT_WINDOW,
        )
        self._workers: list[threading.Thread] = []
        self._next_worker = 0
        #: Seconds a response head takes (under the shared lock): what a split must pay.
        self.latency = 0.0
        #: Worker threads started, for the record (and the tests: no spin).
        self.started = 0

    # -- the control loop ------------------------------------------------------------------

    def run(self, first: tuple[Reply, Lane] | None) -> None:
        s, planner, settings = self.shared, self.planner, self.settings
        last_checkpoint = last_fast = time.monotonic()
        try:
            if first is not None:
                self._start(*first)
            while True:
                now = time.monotonic()
                with s.lock:
                    alive, fatal = s.alive, s.fatal
                    has_work = planner.has_work(self.latency)
                    s.speed.add(now, s.done)
                stopping = s.stop.is_set() or fatal is not None
                if not stopping and has_work:
                    self._grow(alive)
                elif alive == 0:
                    break
                if now - last_checkpoint >= settings.checkpoint_interval:
                    self.checkpoint()
                    last_checkpoint = last_fast = now
                elif self.boot is not None and now - last_fast >= FAST_RECORD:
                    self._record_unsynced()
                    last_fast = now
                with s.lock:
                    changed = self.goal.observe(now, s.done, alive, has_work)
                if changed:
                    log.info("download %s: %s", self.id, changed)
                # A worker that ends wakes the loop at once (a small file is done in
                # milliseconds, and waiting out the tick would cost more than the transfer
                # itself), and so does a slot released by another download of the host.
                s.wake.wait(FAST_RECORD if self.boot is not None else _TICK)
                s.wake.clear()
        except BaseException as exc:
            # The loop itself failed (a checkpoint's write, say): the workers end at their
            # next chunk instead of fetching the rest of the file while run() waits for them.
            s.set_fatal(exc if isinstance(exc, FreightError) else FreightError(repr(exc)))
            raise
        finally:
            for thread in self._workers:
                thread.join()
            self._workers.clear()
        if not planner.complete:
            self.checkpoint()  # a complete file is synced and recorded by finish.complete
        s.check_stop()
        if s.fatal is not None:
            raise s.fatal
        if not planner.complete:
            raise TransientError("the download stopped before the file was complete")

    def _grow(self, alive: int) -> None:
        """Start workers up to the connections wanted, each with a slot of the host taken
        first: no slot, no thread (the release of one sets ``wake``: the loop comes back)."""
        s, host = self.shared, self.host
        cap = self.hosts.cap(host)
        with s.lock:
            changed = self.goal.recover(cap)
            target = self.goal.target
        if changed:
            log.info("download %s: %s", self.id, changed)
        for _ in range(min(target, cap) - alive):
            if not self.hosts.acquire(host, waiter=s.wake):
                return
            self._spawn(None)

    def _start(self, reply: Reply, lane: Lane) -> None:
        """Give the probe's body (it starts at byte 0) to its worker, before any other
        worker can take the piece that starts there."""
        s, planner = self.shared, self.planner
        wid = self._next_worker
        self._next_worker += 1
        # The probe's connection is already open: it counts even if it overshoots the cap.
        self.hosts.acquire(self.host, force=True)
        with s.lock:
            assignment = planner.assign(wid)
            assert assignment is not None and assignment.start == reply.start
            # Its first window is what the probe asked (bytes=0-(W-1), transfer.probe_window)
            # and the server is sending: no split may cut into it (issue 12).
            assert reply.end is not None
            planner.window(assignment.piece_id, max(1, reply.end - reply.start))
        first = (reply, lane, assignment)
        if planner.size <= self.settings.min_split_size:
            # Too small to split: fetch it on this thread (no worker thread to start and
            # wait for: that would cost more than the file itself).
            with s.lock:
                s.alive += 1
            self._worker(wid, first)
            return
        # The other connections first: once the probe's worker streams, each new thread
        # waits for the GIL to start (up to the 5 ms switch interval each), and 15 of them
        # took ~50 ms. The probe's body waits in the socket meanwhile.
        with s.lock:
            alive = s.alive
        self._grow(alive + 1)
        self._spawn(first, wid)

    def _spawn(self, first: First | None, wid: int | None = None) -> None:
        """Start a worker; it owns the host slot taken for it and gives it back."""
        if wid is None:
            wid = self._next_worker
            self._next_worker += 1
        with self.shared.lock:
            self.shared.alive += 1
        thread = threading.Thread(
            target=self._worker, args=(wid, first), name=f"dl{self.id}-w{wid}", daemon=True
        )
        self._workers.append(thread)
        self.started += 1
        thread.start()

    # -- a worker --------------------------------------------------------------------------

    def _worker(self, wid: int, first: First | None) -> None:
        s, planner, host = self.shared, self.planner, self.host
        holds_slot = counted = True
        # The probe's own lane (its lean connection) serves this worker's next ranges too.
        lane = first[1] if first is not None else self.source.lane()
        try:
            while not s.stop.is_set() and s.fatal is None:
                reply: Reply | None = None
                if first is not None:
                    reply, _, assignment = first
                    first = None
                else:
                    surplus = self.surplus()
                    if surplus is not None:
                        holds_slot, counted = surplus != "slot", surplus != "count"
                        return
                    with s.lock:
                        next_assignment = planner.assign(wid, self.latency)
                    if next_assignment is None:
                        return
                    assignment = next_assignment
                try:
                    surplus = windows.fetch(self, assignment, reply, lane)
                    if surplus is not None:
                        holds_slot, counted = surplus != "slot", surplus != "count"
                        return
                except FreightError as exc:
                    if not self._carry_on(exc):
                        return
                except Exception as exc:  # a bug: stop the transfer, keep the data
                    log.exception("download %s: worker %s crashed", self.id, wid)
                    s.set_fatal(FreightError(f"internal error: {exc!r}"))
                    return
                finally:
                    with s.lock:
                        planner.release(assignment.piece_id)
        finally:
            lane.close()
            if holds_slot:
                self.hosts.release(host)
            if counted:
                with s.lock:
                    s.alive -= 1
            s.wake.set()

    def surplus(self) -> Surplus | None:
        """Whether this worker must end (checked between windows): "slot" when the host has
        more connections than its cap (another download's push-back lowered it; the slot
        is given back here), "count" when this download runs more than it wants (``alive``
        is lowered here at once, so that the next worker to look stays)."""
        if self.hosts.release_if_over(self.host):
            return "slot"
        s = self.shared
        with s.lock:
            if s.alive > self.goal.target:
                s.alive -= 1
                return "count"
        return None

    def _carry_on(self, exc: FreightError) -> bool:
        """Ask lifecycle what ``exc`` means and do it; False when this worker ends."""
        s = self.shared
        with s.lock:
            others = s.alive - 1
            decision = lifecycle.after_error(
                exc, mode="segment", failures=s.failures, had_data=s.had_data,
                policy=self.policy, others=others,
            )
            s.failures = decision.count
        if decision.lower_cap:
            lowered = self.hosts.lower(self.host)
            with s.lock:
                self.goal.lower(lowered)
            if decision.verdict is lifecycle.Verdict.RETIRE:
                # The server wants fewer connections; others still work: retire this one.
                log.info("download %s: %s; %d connections now", self.id, exc, lowered)
                return False
        if decision.verdict is lifecycle.Verdict.RETRY:
            log.info("download %s: %s (failure %d)", self.id, exc, decision.count)
            return not s.stop.wait(decision.delay)
        if isinstance(exc, TransientError):
            log.info("download %s: %s (failure %d)", self.id, exc, decision.count)
        assert decision.error is not None
        s.set_fatal(decision.error)
        return False

    # -- progress records ------------------------------------------------------------------

    def checkpoint(self) -> None:
        """fdatasync the data, then record the committed ranges: never the other way round."""
        with self.shared.lock:
            segments = self.planner.snapshot()
            done = self.planner.done
        self.part.sync()
        self.store.save_progress(self.id, segments, done)

    def _record_unsynced(self) -> None:
        """Record what pwrite has handed to the kernel, without a sync (valid for this boot)."""
        if self.boot is None:
            return
        with self.shared.lock:
            segments = self.planner.snapshot()
            done = self.planner.done
        self.store.save_fast_progress(self.id, self.boot, segments, done)
