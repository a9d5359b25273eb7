"""Threads for the daemon's transfers: one per running transfer, reused for the next one.

Each :meth:`~freight.engine.transfer.Transfer.run` blocks its thread for the whole download,
and ``max_active`` may be 64, so every running transfer needs a thread of its own. Starting
one is not free, though: ``Thread.start`` blocks its caller, the event loop, until the new
thread has run, and with busy transfers holding the GIL that took milliseconds per download
(S4 in bench/PROFILE.md). So a thread that has finished its transfer waits for the next one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

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
