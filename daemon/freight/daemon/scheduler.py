"""The queue: which downloads run, on which thread, and what the clients hear of them.

Rules it keeps:

- At most ``max_active`` transfers of unknown or big size run, and beside them at most
  ``max_small`` known to be small (≤ ``small_size``: from an earlier run, or once their probe
  shows it); the rest wait as ``queued`` in ``position`` order. The counts live in one
  :class:`~freight.daemon.slots.Slots`; a free slot is filled at once (:meth:`Scheduler.fill`),
  and so is the big slot of a download whose probe shows it small.
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
on a thread of :class:`~freight.daemon.threads.TransferThreads`; its end and its keeper's
reports hop back with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from freight import config
from freight.daemon.events import Hub
from freight.daemon.slots import Slots
from freight.daemon.threads import TransferThreads
from freight.engine import limits
from freight.errors import FreightError, ShuttingDown
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Store

log = logging.getLogger(__name__)

S = DownloadState
STOP_WAIT = 10.0  # seconds a pause/cancel/remove waits for a transfer to end


class TransferLike(Protocol):
    def run(self) -> Download: ...
    def stop(self, reason: Any) -> None: ...
    def progress(self) -> Any: ...
    def set_limit(self, bytes_per_second: int | None) -> None: ...


#: Called as ``factory(store, download_id, engine_settings, *, keeper, global_limiter,
#: host_caps)``, like :class:`~freight.engine.transfer.Transfer`.
TransferFactory = Callable[..., TransferLike]


@dataclass
class _Running:
    transfer: TransferLike
    done: asyncio.Future[Download]
    stop_reason: str | None = None
    requeue: bool = False  # resumed while a pause was on its way: queue it again at the end


class Scheduler:
    def __init__(
        self, store: Store, hub: Hub, *, transfer_factory: TransferFactory | None = None
    ) -> None:
        self.store = store
        self.hub = hub
        self.keeper = StateKeeper(store, self._on_change)
        self._factory = transfer_factory or self._engine_transfer
        self._running: dict[int, _Running] = {}
        self._threads = TransferThreads()
        settings = store.settings()
        self.slots = Slots(settings["max_active"], settings["max_small"])
        self._small_size: int = settings["small_size"]
        #: Queued downloads known small, in the order they were queued: the small lane
        #: starts them without reading the queue's rows (most are of unknown size).
        self._small_queued: dict[int, None] = {}
        self.limiter = limits.RateLimiter(settings["global_limit"])
        self.host_caps = limits.HostCaps(settings["max_host_connections"])
        self.accepting = True
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what a previous daemon left active, then fill free slots from the queue."""
        self._loop = asyncio.get_running_loop()
        active, _ = self.store.list([S.ACTIVE])
        for download in active:
            if self.slots.admit(download.id, small=self._known_small(download)) is not None:
                log.info("resuming download %s (%s)", download.id, download.name or download.url)
                self._launch(download)
            else:
                # More were active than may run now (max_active was lowered): queue the rest.
                self.keeper.move(download.id, S.QUEUED)
        self.fill()
        self.hub.start_progress(self.progress_rows)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop taking work; stop every transfer with "shutdown" (they stay active and
        checkpoint); wait up to ``timeout`` seconds for them to end."""
        self.accepting = False
        await self.hub.stop()
        for run in self._running.values():
            run.stop_reason = "shutdown"
            run.transfer.stop("shutdown")
        pending = [r.done for r in self._running.values()]
        if pending:
            done, not_done = await asyncio.wait(pending, timeout=timeout)
            if not_done:
                log.warning("%d transfers did not stop within %.0f s", len(not_done), timeout)

    def require_accepting(self) -> None:
        """Raise ShuttingDown once the staged shutdown has begun: no new work then."""
        if not self.accepting:
            raise ShuttingDown("the daemon is stopping")

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Make changed settings take effect now (``port`` waits for the next start)."""
        self.limiter.set_rate(settings["global_limit"])
        self.slots.set_limits(settings["max_active"], settings["max_small"])
        self._small_size = settings["small_size"]
        if self.host_caps.default != settings["max_host_connections"]:
            self.host_caps.set_default(settings["max_host_connections"])
        self.fill()

    # -- the queue -------------------------------------------------------------------------

    def added(self, download: Download) -> None:
        """A download was just added (queued or paused): note it, start what may start."""
        self._track(download)
        self.fill()

    def fill(self) -> None:
        """Start queued downloads while a slot is free for them: the known small ones (in
        the order they were queued) in the small lane, then the queue's head in position
        order in the big slots. A fill reads only the rows it can start: one per free big
        slot, and the known small ones by id."""
        if not self.accepting or self._loop is None:
            return
        slots = self.slots
        while slots.free_small > 0 and self._small_queued:
            download_id = next(iter(self._small_queued))
            del self._small_queued[download_id]
            try:
                download = self.store.get(download_id)
            except FreightError:  # removed meanwhile
                continue
            if download.state is S.QUEUED and self._known_small(download):
                self._start(download)
        if slots.free_big > 0:
            for download in self.store.next_queued(slots.free_big):
                self._start(download)

    def _start(self, download: Download) -> None:
        if self.slots.admit(download.id, small=self._known_small(download)) is None:
            return  # no slot fits it (a big slot taken meanwhile): it stays queued
        try:
            download = self.keeper.move(download.id, S.ACTIVE)
        except FreightError as exc:  # changed under us; the next fill will see it
            self.slots.release(download.id)
            log.warning("cannot start download %s: %s", download.id, exc)
            return
        self._launch(download)

    def _track(self, download: Download) -> None:
        """Keep ``_small_queued`` true to the row just changed (every change of state goes
        through the keeper, whose listener calls this, and a new download through added)."""
        if download.state is S.QUEUED and self._known_small(download):
            self._small_queued[download.id] = None
        else:
            self._small_queued.pop(download.id, None)

    def _known_small(self, download: Download) -> bool:
        return download.size is not None and download.size <= self._small_size

    def _size_learnt(self, download: Download) -> None:
        """A running download's row changed: when its size is now known small, its big slot
        goes to the next queued download (on the loop, like every change of the slots)."""
        if (
            download.id in self._running
            and self._known_small(download)
            and self.slots.promote(download.id)
        ):
            log.debug("download %s: small (%s bytes), beside max_active", download.id,
                      download.size)
            self.fill()

    def _launch(self, download: Download) -> None:
        assert self._loop is not None
        loop = self._loop
        engine = config.EngineSettings.from_settings(
            self.store.settings(), connections=download.connections
        )
        transfer = self._factory(
            self.store,
            download.id,
            engine,
            keeper=self.keeper,
            global_limiter=self.limiter,
            host_caps=self.host_caps,
        )
        done: asyncio.Future[Download] = loop.create_future()
        self._running[download.id] = _Running(transfer, done)

        def body() -> None:
            try:
                outcome: Download | BaseException = transfer.run()
            except BaseException as exc:  # a bug in the engine; keep the daemon up
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop closed: the daemon is gone
                loop.call_soon_threadsafe(self._finished, download.id, outcome)

        self._threads.run(f"transfer-{download.id}", body)

    def _engine_transfer(
        self, store: Store, download_id: int, settings: Any, **kwargs: Any
    ) -> TransferLike:
        from freight.engine.transfer import Transfer

        return Transfer(store, download_id, settings, **kwargs)

    def _finished(self, download_id: int, outcome: Download | BaseException) -> None:
        run = self._running.pop(download_id)
        self.slots.release(download_id)
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
        if download is not None and run.requeue and download.state == S.PAUSED:
            download = self.keeper.move(download_id, S.QUEUED)
        if not run.done.done():
            run.done.set_result(download)  # type: ignore[arg-type]
        self.fill()

    # -- running transfers -----------------------------------------------------------------

    def is_running(self, download_id: int) -> bool:
        return download_id in self._running

    async def stop(self, download_id: int, reason: str) -> Download | None:
        """Ask a running transfer to stop ("pause", "cancel") and wait up to STOP_WAIT for
        it to end; the download as stored then, or None when none ran or it did not end."""
        run = self._running.get(download_id)
        if run is None:
            return None
        run.stop_reason = reason
        run.requeue = False
        run.transfer.stop(reason)
        try:
            return await asyncio.wait_for(asyncio.shield(run.done), STOP_WAIT)
        except TimeoutError:
            log.warning("download %s did not stop within %.0f s", download_id, STOP_WAIT)
            return None

    def requeue_if_pausing(self, download_id: int) -> bool:
        """A resume while a pause is on its way: queue the download again once its
        transfer has ended paused. Whether a pause was on its way."""
        run = self._running.get(download_id)
        if run is None or run.stop_reason != "pause":
            return False
        run.requeue = True
        return True

    def set_transfer_limit(self, download_id: int, limit: int | None) -> None:
        """Apply a download's speed limit to its running transfer, if one runs."""
        run = self._running.get(download_id)
        if run is not None:
            run.transfer.set_limit(limit)

    # -- what the clients see --------------------------------------------------------------

    def _on_change(self, download: Download, moved: bool) -> None:
        """The keeper's listener, called on whichever thread changed the row."""
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self._publish(download, moved)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the daemon is gone
            loop.call_soon_threadsafe(self._publish, download, moved)

    def _publish(self, download: Download, moved: bool) -> None:
        self._track(download)
        if not moved:
            self.hub.publish("download.changed", {"download": self.public(download)})
            self._size_learnt(download)  # after its event: the next download's come later
            return
        self.hub.publish(
            "download.state",
            {
                "id": download.id,
                "state": download.state.value,
                "error": download.error,
                "error_kind": download.error_kind,
                "download": self.public(download),
            },
        )

    def public(self, download: Download) -> dict[str, Any]:
        """The download as the API shows it, with live progress while it runs."""
        out = download.public()
        out["speed"] = 0
        out["eta"] = None
        run = self._running.get(download.id)
        if run is not None:
            p = run.transfer.progress()
            out.update(
                done=max(download.done, p.done), size=p.size if p.size is not None else
                download.size, speed=round(p.speed), eta=_round(p.eta),
                connections=p.connections,
            )
        return out

    def progress_rows(self) -> list[dict[str, Any]]:
        """Live progress of every running transfer, in the order they started."""
        rows = []
        for download_id, run in list(self._running.items()):
            p = run.transfer.progress()
            rows.append(
                {"id": download_id, "done": p.done, "size": p.size, "speed": round(p.speed),
                 "eta": _round(p.eta), "connections": p.connections}
            )
        return rows

    def speed(self) -> int:
        return sum(round(run.transfer.progress().speed) for run in self._running.values())


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # not on a loop's thread: a transfer's
        return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
