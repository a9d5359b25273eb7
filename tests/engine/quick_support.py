"""A small download run as the daemon's scheduler runs it: on an event loop first
(engine/quick.py, with a real AioPool and Finisher), then, when the loop hands it over, by the
threads' engine (a real Transfer) — against real servers, with a real SQLite file."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.config import EngineSettings
from freight.engine.finisher import Finisher
from freight.engine.http.aio import AioPool
from freight.engine.http.httpx_reader import USER_AGENT, ssl_context
from freight.engine.limits import HostCaps
from freight.engine.quick import HandOver, QuickTransfer
from freight.engine.transfer import Transfer
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Store

SMALL = 1 << 20


@dataclass
class Ended:
    download: Download  # as stored at the end
    handed_over: HandOver | None  # why the loop handed it to the threads, if it did


class Loop:
    """An event loop on a thread of its own, with the scheduler's pool and finisher."""

    def __init__(self, store: Store, settings: EngineSettings) -> None:
        self.store = store
        self.keeper = StateKeeper(store)
        self.settings = settings
        self.hosts = HostCaps(32)  # the daemon's default max_host_connections
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pool = AioPool(
            connect_timeout=settings.connect_timeout, stall_timeout=settings.stall_timeout,
            user_agent=USER_AGENT, ssl_context=lambda: ssl_context(False),
        )
        self.finisher = Finisher(self.keeper, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.pool.close)
        self.finisher.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def quick(self, download: Download, small_size: int = SMALL) -> QuickTransfer:
        return QuickTransfer(
            download, self.settings, keeper=self.keeper, pool=self.pool,
            host_caps=self.hosts, small_size=small_size, finish=self._finish,
            proxies_may_apply=False,
        )

    async def _finish(self, download: Download, body: bytes, learn: Any) -> Download:
        return await self.finisher.finish(download, body, learn)

    def start(self, run: QuickTransfer) -> asyncio.Future[Download | HandOver]:
        return asyncio.run_coroutine_threadsafe(run.run(), self.loop)  # type: ignore[return-value]

    def run(self, download: Download, small_size: int = SMALL) -> Ended:
        """The download to its end: on the loop, then by a Transfer when handed over."""
        outcome = self.start(self.quick(download, small_size)).result(60)
        if isinstance(outcome, HandOver):
            Transfer(self.store, download.id, self.settings).run()
            return Ended(self.store.get(download.id), outcome)
        return Ended(outcome, None)


def add(store: Store, tmp_path: Path, url: str, **fields: Any) -> Download:
    folder = tmp_path / "dl"
    folder.mkdir(exist_ok=True)
    return store.add(url, str(folder), state=DownloadState.ACTIVE, **fields)
