"""Running real Transfers in this process against the fault server, for the segmented
engine's tests (test_seg_*.py): a real SQLite store, a real .part, real sockets on 127.0.0.1."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.config import EngineSettings
from freight.engine.limits import HostCaps
from freight.engine.transfer import Transfer
from freight.models import Download, DownloadState
from freight.store import Store

MIB = 1024 * 1024
FAST: dict[str, Any] = {
    "checkpoint_interval": 0.1, "stall_timeout": 5.0, "connect_timeout": 2.0,
    "retry_base": 0.05, "retry_max": 0.5,
}


@dataclass
class Running:
    """A Transfer running in a thread of its own."""

    transfer: Transfer
    thread: threading.Thread
    result: list[Download]

    def join(self, timeout: float = 60) -> Download:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the transfer did not end"
        return self.result[0]


def add(store: Store, url: str, folder: Path, **fields: Any) -> Download:
    folder.mkdir(exist_ok=True)
    return store.add(url, str(folder), state=DownloadState.ACTIVE, **fields)


def start(
    store: Store, download_id: int, *, hosts: HostCaps | None = None, **settings: Any
) -> Running:
    transfer = Transfer(
        store, download_id, EngineSettings(**{**FAST, **settings}), host_caps=hosts
    )
    result: list[Download] = []
    thread = threading.Thread(
        target=lambda: result.append(transfer.run()), name=f"test-transfer-{download_id}",
        daemon=True,
    )
    thread.start()
    return Running(transfer, thread, result)


def saved(download: Download) -> bytes:
    assert download.state is DownloadState.COMPLETED, (download.state, download.error)
    assert download.path is not None
    return Path(download.path).read_bytes()
