"""The queue: which downloads run, on which thread, and what the clients hear of them.

Rules it keeps:

- At most ``max_active`` big downloads run, and beside them at most ``max_small`` small
  ones; the rest wait as ``queued`` in ``position`` order. The small lane takes those known
  to be small (≤ ``small_size``) and, while the loop may fetch them, those of unknown size:
  it runs them on the loop (engine/quick.py), one request each, and one that turns out big
  (or needs the threads' engine for another reason) is handed back to the queue as a big
  one (``_big_only``, or its size), where a big slot runs it on a thread. The counts live in
  one :class:`~freight.daemon.slots.Slots`; free slots are filled at once
  (:meth:`Scheduler.fill`, once per turn of the loop), and so is the big slot of a download
  whose probe on a thread shows it small.
- One owner of state changes (docs/ARCHITECTURE.md): every move of a download's state, the
  scheduler's own and its transfers', goes through the one :class:`~freight.states.StateKeeper`
  made here (transition table → store → listener). Its listener hops to the loop when called
  from a transfer's thread and publishes ``download.state`` for a move, ``download.changed``
  for any other change of the row (docs/PROTOCOL.md "Events"), so nobody guesses which.
- A running download's end state is written by its :class:`~freight.engine.transfer.Transfer`
  (through the keeper): the scheduler asks it to stop (``pause``, ``cancel``, ``shutdown``)
  and :meth:`Scheduler.stop` waits (briefly) for it to end, so that a reply describes what is
  stored.
- On start, downloads left ``active`` by a previous daemon (a crash, a shutdown) run again
  first; ``queued`` and ``paused`` stay as they were.

The user's actions on downloads (add, pause, resume, ...) are :class:`~freight.daemon.actions.
Actions`, built on the public methods here. Progress is not an event per chunk: the hub
samples :meth:`Scheduler.progress_rows` a few times a second (``download.progress``).

Threads: everything here runs on the daemon's event loop except ``Transfer.run``, which runs
on a thread of :class:`~freight.daemon.threads.ThreadRuns`, and the small files'
writes (engine/finisher.py); their ends and their keeper's reports hop back with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from freight import config
from freight.daemon.events import Hub
from freight.daemon.running import Running, RunningTransfers, TransferFactory
from freight.daemon.slots import Slots
from freight.daemon.smallfiles import Outcome, SmallFiles
from freight.daemon.threads import Coalesced, LoopHop, ThreadRuns
from freight.engine import limits, quick
from freight.errors import FreightError, ShuttingDown
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Lane, QueueReader, Store

log = logging.getLogger(__name__)

S = DownloadState
ENDED = frozenset({S.COMPLETED, S.REMOVED, S.FAILED})

#: Seconds a freed small slot waits for others before its refill. Small files free their
#: slots one at a time, as their bodies come in, each in a turn of the loop of its own: filled
#: at once, each was a fill of its own (a transaction, a read of the queue, a launch) and the
#: lane's requests went out one by one. Gathered, one fill starts what ~1 ms freed (S4: 1,331
#: fills for 2,000 files → ~250, and the daemon's CPU per file down by a third:
#: bench/PROFILE.md §9); a millisecond is nothing beside a request's round trip.
REFILL_GATHER = 0.001


class Scheduler:
    def __init__(
        self, store: Store, hub: Hub, *, transfer_factory: TransferFactory | None = None
    ) -> None:
        self.store = store
        self.hub = hub
        self.keeper = StateKeeper(store, self._on_change)
        #: The loop's small-file runs (engine/quick.py) exist beside the engine's threads;
        #: a scheduler given its own transfers (a test's) runs every download through them.
        self._quick = transfer_factory is None
        #: What runs now (its owner this scheduler); the API's rows and figures read it.
        self.running = RunningTransfers()
        settings = store.settings()
        self.slots = Slots(settings["max_active"], settings["max_small"])
        self._small_size: int = settings["small_size"]
        #: Queued downloads of unknown size that the small lane handed over (``_handed``) or
        #: could not take: the big lane's, whatever their size says.
        self._big_only: set[int] = set()
        self._handed: set[int] = set()
        self._engine = config.EngineSettings.from_settings(settings)
        self._refill = Coalesced(self.fill)  # the fills asked for, as one
        self._hop: LoopHop | None = None  # the transfers' reports onto the loop, once it runs
        self.limiter = limits.RateLimiter(settings["global_limit"])
        self.host_caps = limits.HostCaps(settings["max_host_connections"])
        self._small_files = SmallFiles(self.keeper, self.host_caps)  # the loop's runs
        self._threads = ThreadRuns(store, self.keeper, self.limiter, self.host_caps,
                                   transfer_factory)  # the others
        self.accepting = True
        self.held = False  # by the schedule (daemon/timekeeper.py): fill starts nothing
        self.settings_listeners: list[Callable[[dict[str, Any]], None]] = []  # the schedule's
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None  # its thread's id, once it runs

    # -- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what a previous daemon left active, then fill free slots from the queue."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._hop = LoopHop(self._loop, self._publish)
        self._small_files.start(self._loop, self._engine)
        active, _ = self.store.list([S.ACTIVE])
        for download in active:
            if self.slots.admit(download.id, small=self._known_small(download)) is not None:
                log.info("resuming download %s (%s)", download.id, download.name or download.url)
                self._launch(download)
            else:
                # More were active than may run now (max_active was lowered): queue the rest.
                self.keeper.move(download.id, S.QUEUED)
        self.fill()
        self.hub.start_progress(self.running.progress_rows)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop taking work; stop every transfer with "shutdown" (they stay active and
        checkpoint); wait up to ``timeout`` seconds for them to end."""
        self.accepting = False
        await self.hub.stop()
        for run in self.running:
            run.stop_reason = "shutdown"
            run.transfer.stop("shutdown")
        pending = [r.done for r in self.running]
        if pending:
            done, not_done = await asyncio.wait(pending, timeout=timeout)
            if not_done:
                log.warning("%d transfers did not stop within %.0f s", len(not_done), timeout)
        self._small_files.close()

    def require_accepting(self) -> None:
        """Raise ShuttingDown once the staged shutdown has begun: no new work then."""
        if not self.accepting:
            raise ShuttingDown("the daemon is stopping")

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Make changed settings take effect now (``port`` waits for the next start)."""
        self.limiter.set_rate(settings["global_limit"])
        self.slots.set_limits(settings["max_active"], settings["max_small"])
        self._small_size = settings["small_size"]
        self._engine = config.EngineSettings.from_settings(settings)
        if self.host_caps.default != settings["max_host_connections"]:
            self.host_caps.set_default(settings["max_host_connections"])
        for listener in self.settings_listeners:  # the schedule: its rate under this limit
            listener(settings)
        self.fill()

    # -- the queue -------------------------------------------------------------------------

    def added(self, download: Download) -> None:
        """A download was just added (queued or paused): start what may start (once per turn
        of the loop, however many were added in it)."""
        self._fill_soon()

    def _fill_soon(self, gather: bool = False) -> None:
        """Fill once the loop's current callbacks have run: what ended or was added in one
        turn (a batch of small files, pipelined adds) is answered by one fill, one query per
        lane and one transaction. ``gather``: a slot freed by a small file's body waits
        REFILL_GATHER for the others freed meanwhile."""
        if self._loop is not None:
            self._refill.ask(self._loop, REFILL_GATHER if gather else 0.0)

    def fill(self) -> None:
        """Start queued downloads while a slot is free for them, in queue order within each
        lane (the module's rules), reading only the rows it can start: both lanes read,
        chosen and started in one transaction."""
        if not self.accepting or self.held or self._loop is None:
            return
        admitted: list[tuple[Download, bool]] = []  # and whether it runs on the loop

        def choose(read: QueueReader) -> list[int]:
            slots, quick_on = self.slots, self._quick_on()
            while slots.free_small > 0:  # the rows admitted are still queued until the end
                taken = self._big_only | {d.id for d, _ in admitted}
                lane = Lane(self._small_size, True, quick_on, taken)
                if not self._admit(read(slots.free_small, lane), quick_on, admitted):
                    break  # no row left for the big lane: the query is done
            if slots.free_big > 0:
                big = None if slots.max_small == 0 else Lane(
                    self._small_size, False, quick_on, self._big_only)
                self._admit(read(slots.free_big, big), None, admitted)
            return [download.id for download, _ in admitted]

        try:  # the started are the very rows chosen from, moved to active
            started = {d.id for d in self.keeper.start_queued(choose)}
        except FreightError as exc:  # the store failed; the next fill tries again
            log.warning("cannot start downloads: %s", exc)
            started = set()
        for download, on_loop in admitted:
            if download.id not in started:  # not stored as started: its slot is free again
                self.slots.release(download.id)
            else:
                (self._launch_quick if on_loop else self._launch)(download)

    def _admit(self, rows: list[Download], quick_on: bool | None,
               admitted: list[tuple[Download, bool]]) -> bool:
        """Give each row a slot of its lane (``quick_on`` None: the big lane's), on the loop
        when the small lane may fetch it there. Whether one went to the big lane instead
        (unknown size, not for the loop): the small lane then reads again."""
        chosen: list[tuple[Download, bool]] = []
        handed = False
        for download in rows:
            if quick_on is None:
                chosen.append((download, False))
            elif quick_on and self._small_files.may_run(download, self._engine):
                chosen.append((download, True))
            elif self._known_small(download):
                chosen.append((download, False))
            else:  # unknown size, not for the loop: a big slot's
                self._big_only.add(download.id)
                handed = True
        admitted.extend((download, on_loop) for download, on_loop in chosen if self.slots.admit(
            download.id, small=on_loop or self._known_small(download)) is not None)
        return handed

    def _quick_on(self) -> bool:
        """Whether downloads of unknown size are tried on the loop: a small lane exists and
        no global speed limit is set (a limit is the threads' engine's to keep)."""
        return (
            self._quick
            and self.slots.max_small > 0
            and self._small_size > 0
            and self.limiter.rate is None
        )

    def _track(self, download: Download) -> None:
        """Forget a download handed to the big lane once it has ended (every change of state
        goes through the keeper, whose listener calls this)."""
        if download.state in ENDED:
            self._big_only.discard(download.id)
            self._handed.discard(download.id)

    def _known_small(self, download: Download) -> bool:
        return download.size is not None and download.size <= self._small_size

    def _size_learnt(self, download: Download) -> None:
        """A running download's row changed: when its size is now known small, its big slot
        goes to the next queued download (on the loop, like every change of the slots)."""
        # Not one the small lane handed over (it waits its turn among the big ones, or a
        # host that pushed back would get every such probe at once).
        running, small = download.id in self.running, self._known_small(download)
        if running and small and download.id not in self._handed and self.slots.promote(
                download.id):
            log.debug("download %s: small, beside max_active", download.id)
            self.fill()

    def _launch(self, download: Download) -> None:
        """Run a download on a thread (engine/transfer.py); its end comes to :meth:`_finished`."""
        assert self._loop is not None
        transfer = self._threads.launch(self._loop, download, self._finished)
        self.running.add(download.id, Running(transfer, self._loop.create_future()))

    def _launch_quick(self, download: Download) -> None:
        """Run a download on the loop (engine/quick.py); its end comes to :meth:`_finished`
        like a thread's, or as a HandOver to :meth:`_hand_over`."""
        assert self._loop is not None
        run = self._small_files.launch(
            download, self._engine, self._small_size, self._quick_ended, self._connection_free
        )
        self.running.add(download.id, Running(run, self._loop.create_future()))

    def _connection_free(self, download_id: int) -> None:
        """A small file's body is in memory and its connection back in the pool: its slot is
        free for the next one while the finisher writes it (the lanes bound connections)."""
        if self.slots.release(download_id) is not None:
            self._fill_soon(gather=True)

    def _quick_ended(self, download_id: int, outcome: Outcome) -> None:
        running = self.running.get(download_id)
        if isinstance(outcome, ShuttingDown) and running is not None:
            running.stop_reason = "shutdown"  # the loop is ending under it: it stays active
        if isinstance(outcome, quick.HandOver):
            self._hand_over(download_id, outcome)
        else:
            self._finished(download_id, outcome)

    def _hand_over(self, download_id: int, handed: quick.HandOver) -> None:
        """The loop could not finish this download alone: it goes back to the queue as a big
        one (its size recorded when learnt), where a big slot takes it in queue order."""
        run = self.running.pop(download_id)
        self.slots.release(download_id)
        log.debug("download %s: to the big lane (%s)", download_id, handed.why)
        try:
            self._handed.add(download_id)
            if handed.size is None or handed.size <= self._small_size:
                self._big_only.add(download_id)
            if handed.size is not None:
                self.keeper.update(download_id, size=handed.size)
            download = self.keeper.move(download_id, S.QUEUED)
        except FreightError as exc:  # removed meanwhile
            log.warning("download %s: %s", download_id, exc)
            download = None
        if not run.done.done():
            run.done.set_result(download)  # type: ignore[arg-type]
        self._fill_soon()

    def _finished(self, download_id: int, outcome: Download | BaseException) -> None:
        run = self.running.pop(download_id)
        freed = self.slots.release(download_id) is not None
        download: Download | None
        if isinstance(outcome, Download) and outcome.id == download_id:
            download = outcome  # the row as its run stored it last
        else:
            try:
                download = self.store.get(download_id)
            except FreightError:
                download = None
        if isinstance(outcome, BaseException):
            log.error("download %s: transfer crashed", download_id, exc_info=outcome)
            if download is not None and download.state == S.ACTIVE and run.stop_reason is None:
                download = self.keeper.move(
                    download_id, S.FAILED, error=f"internal error: {outcome!r}",
                    error_kind="internal",
                )
        requeued = download is not None and run.requeue and download.state == S.PAUSED
        if requeued:
            download = self.keeper.move(download_id, S.QUEUED)
        if not run.done.done():
            run.done.set_result(download)  # type: ignore[arg-type]
        if freed or requeued:  # a small file's slot was freed (and refilled) at its body
            self._fill_soon()

    # -- running transfers (daemon/running.py) --------------------------------------------

    def is_running(self, download_id: int) -> bool:
        return download_id in self.running

    async def stop(self, download_id: int, reason: str) -> Download | None:
        return await self.running.stop(download_id, reason)

    def requeue_if_pausing(self, download_id: int) -> bool:
        return self.running.requeue_if_pausing(download_id)

    def set_transfer_limit(self, download_id: int, limit: int | None) -> None:
        self.running.set_limit(download_id, limit)

    # -- what the clients see --------------------------------------------------------------

    def _on_change(self, download: Download, moved: bool) -> None:
        """The keeper's listener, called on whichever thread changed the row (the loop's is
        known by its id: asyncio.get_running_loop costs a getpid, twice per small file)."""
        loop, here = self._loop, threading.get_ident() == self._loop_thread
        if self._hop is None or (here and loop is not None and loop.is_running()):
            self._publish(download, moved)
        else:
            self._hop(download, moved)

    def _publish(self, download: Download, moved: bool) -> None:
        self._track(download)
        if not moved:
            if self.hub.wanted("download.changed"):
                self.hub.publish("download.changed", {"download": self.running.public(download)})
            self._size_learnt(download)  # after its event: the next download's come later
            return
        state = download.state.value  # a client filtered on states may not hear this one
        if self.hub.wanted("download.state", state=state):
            params = {"id": download.id, "state": state, "error": download.error,
                      "error_kind": download.error_kind}
            if self.hub.wanted("download.state", rows=True, state=state):
                params["download"] = self.running.public(download)
            self.hub.publish("download.state", params)
