"""Threads for the daemon's transfers: one per running transfer, reused for the next one.

Each :meth:`~freight.engine.transfer.Transfer.run` blocks its thread for the whole download,
and ``max_active`` may be 64, so every running transfer needs a thread of its own. Starting
one is not free, though: ``Thread.start`` blocks its caller, the event loop, until the new
thread has run, and with busy transfers holding the GIL that took milliseconds per download
(S4 in bench/PROFILE.md). So a thread that has finished its transfer waits for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from freight import config
from freight.engine.limits import HostCaps, RateLimiter
from freight.models import Download
from freight.states import StateKeeper
from freight.store import Store

log = logging.getLogger(__name__)


class TransferThreads:
    """Runs each job at once on a thread of its own, reusing idle threads.

    An idle thread waits for the next transfer for ``idle_exit`` seconds, then ends. Daemon
    threads: a stuck transfer cannot hold the process after the staged shutdown's timeout;
    its data is safe on disk anyway.
    """

    def __init__(self, idle_exit: float = 30.0) -> None:
        self.idle_exit = idle_exit
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job that no submitter has counted on yet

    def run(self, name: str, job: Callable[[], None]) -> None:
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
        self._jobs.put((name, job))
        if not reuse:
            threading.Thread(target=self._serve, name=name, daemon=True).start()

    @property
    def idle(self) -> int:
        with self._lock:
            return self._idle

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                name, job = self._jobs.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody counts on this thread: end it
                        self._idle -= 1
                        return
                continue  # a submitter counted on it just now: its job is on the way
            me.name = name  # what the log shows
            try:
                job()
            except BaseException:  # the job reports its own errors; the thread lives on
                log.exception("%s: unexpected error", name)
            me.name = "transfer-idle"
            with self._lock:
                self._idle += 1


class ThreadRuns:
    """The scheduler's downloads on threads: a :class:`~freight.engine.transfer.Transfer`
    each (or what a test's ``factory`` makes, called alike), run on a reused thread; each
    end — the download as stored, or the exception of a bug — is reported on the loop."""

    def __init__(
        self, store: Store, keeper: StateKeeper, limiter: RateLimiter, host_caps: HostCaps,
        factory: Callable[..., Any] | None = None,
    ) -> None:
        self.store = store
        self.keeper = keeper
        self.limiter = limiter
        self.host_caps = host_caps
        self._factory = factory or _engine_transfer
        self._threads = TransferThreads()

    def launch(
        self, loop: asyncio.AbstractEventLoop, download: Download,
        ended: Callable[[int, Download | BaseException], None],
    ) -> Any:
        engine = config.EngineSettings.from_settings(
            self.store.settings(), connections=download.connections
        )
        transfer = self._factory(
            self.store, download.id, engine, keeper=self.keeper,
            global_limiter=self.limiter, host_caps=self.host_caps,
        )

        def body() -> None:
            try:
                outcome: Download | BaseException = transfer.run()
            except BaseException as exc:  # a bug in the engine; keep the daemon up
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop closed: the daemon is gone
                loop.call_soon_threadsafe(ended, download.id, outcome)

        self._threads.run(f"transfer-{download.id}", body)
        return transfer


def _engine_transfer(store: Store, download_id: int, settings: Any, **kwargs: Any) -> Any:
    from freight.engine.transfer import Transfer  # not imported before the first one runs

    return Transfer(store, download_id, settings, **kwargs)


class LoopHop:
    """Calls from other threads onto the loop, in order, as few hops as they allow: what
    arrives while a hop is on its way joins it (a batch of small files recorded at once is
    one wake-up of the loop, not one per file)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, call: Callable[..., None]) -> None:
        self._loop = loop
        self._call = call
        self._lock = threading.Lock()
        self._waiting: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self._waiting.append(args)
            if len(self._waiting) > 1:
                return  # a hop is on its way: it takes these too
        with contextlib.suppress(RuntimeError):  # the loop closed: the daemon is gone
            self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for args in waiting:
            self._call(*args)


class Coalesced:
    """``call`` once on the loop for all the asks made before it runs: in the loop's next
    turn, or, asked with a delay, after it (those asked meanwhile join it); an ask for the
    next turn takes a delayed one along. The scheduler's fills (scheduler.REFILL_GATHER)."""

    def __init__(self, call: Callable[[], None]) -> None:
        self._call = call
        self._handle: asyncio.Handle | None = None
        self._delayed = False

    def ask(self, loop: asyncio.AbstractEventLoop, delay: float = 0.0) -> None:
        if self._handle is not None:
            if delay or not self._delayed:
                return  # the one on its way serves this ask too
            self._handle.cancel()
        self._delayed = delay > 0
        self._handle = loop.call_later(delay, self._run) if delay else loop.call_soon(self._run)

    def _run(self) -> None:
        self._handle = None
        self._call()
