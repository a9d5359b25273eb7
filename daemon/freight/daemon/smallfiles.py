"""The scheduler's small files on the loop: their kept connections, their finisher, and one
task per download (engine/quick.py). What to run here and what a hand-over means for the
queue are the scheduler's; this only runs them and reports each end.

Made when the loop runs (:meth:`SmallFiles.start`) and closed with the daemon: the idle
connections are dropped, the finisher's thread ends after the batch it holds.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from freight.config import EngineSettings
from freight.engine import quick
from freight.engine.finisher import BATCH, Finisher
from freight.engine.http import lean
from freight.engine.http.aio import AioPool
from freight.engine.http.httpx_reader import USER_AGENT, ssl_context
from freight.engine.limits import HostCaps
from freight.errors import ShuttingDown
from freight.models import Download
from freight.states import StateKeeper

#: What a run on the loop ended with: the download as stored, a hand-over, or an error
#: (a bug, or the loop ending under it: ShuttingDown).
Outcome = Download | quick.HandOver | BaseException


class SmallFiles:
    def __init__(self, keeper: StateKeeper, host_caps: HostCaps) -> None:
        self.keeper = keeper
        self.host_caps = host_caps
        self.proxies = lean.proxies_may_apply()  # once: the daemon's environment is fixed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: AioPool | None = None
        self._finisher: Finisher | None = None

    def start(self, loop: asyncio.AbstractEventLoop, settings: EngineSettings) -> None:
        self._loop = loop
        self._pool = AioPool(
            connect_timeout=settings.connect_timeout, stall_timeout=settings.stall_timeout,
            user_agent=USER_AGENT, ssl_context=_ssl_context,
        )
        self._finisher = Finisher(self.keeper, loop)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._finisher is not None:
            self._finisher.close()

    def may_run(self, download: Download, settings: EngineSettings) -> bool:
        return quick.may_run_quick(download, settings, proxies_may_apply=self.proxies)

    def launch(
        self, download: Download, settings: EngineSettings, small_size: int,
        ended: Callable[[int, Outcome], None], connection_free: Callable[[int], None],
    ) -> quick.QuickTransfer:
        """Run ``download`` on the loop; ``ended(id, outcome)`` is called on the loop, and
        before it ``connection_free(id)`` once its body is in memory while the finisher keeps
        up (fewer than BATCH bodies wait for it: what waits in memory stays bounded)."""
        finisher = self._finisher
        assert self._loop is not None and self._pool is not None and finisher is not None

        def body_in() -> None:
            if finisher.backlog < BATCH:
                connection_free(download.id)

        run = quick.QuickTransfer(
            download, settings, keeper=self.keeper, pool=self._pool, host_caps=self.host_caps,
            small_size=small_size, finish=finisher.finish, proxies_may_apply=self.proxies,
            body_in=body_in,
        )
        task = self._loop.create_task(run.run())
        task.add_done_callback(lambda t: ended(download.id, _outcome(t)))
        return run


def _outcome(task: asyncio.Task[Download | quick.HandOver]) -> Outcome:
    if task.cancelled():
        return ShuttingDown("stopped")
    exc = task.exception()
    return exc if exc is not None else task.result()


@functools.cache
def _ssl_context() -> Any:
    """One TLS context for the loop's connections (making one reads the trust store)."""
    return ssl_context(False)
