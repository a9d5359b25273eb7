"""A real Transfer run to its end on the wire, for the HTTP tests of both readers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from freight.config import EngineSettings
from freight.engine.transfer import Transfer
from freight.models import Download, DownloadState
from freight.store import Store

#: Settings that make a test's transfer quick: small pieces, no waiting between tries.
FAST: dict[str, Any] = {
    "connections": 4, "adaptive": False, "min_split_size": 64 * 1024, "read_size": 16 * 1024,
    "retry_base": 0.0, "retry_max": 0.01, "max_tries": 6, "checkpoint_interval": 0.05,
    "stall_timeout": 3.0, "connect_timeout": 3.0,
}


def run_transfer(store: Store, tmp_path: Path, url: str, settings: EngineSettings,
                 **fields: Any) -> Download:
    """Add ``url`` into ``tmp_path/dl``, run a real Transfer (its own HttpSource) on it to its
    end, and return the row as it ended."""
    folder = tmp_path / "dl"
    folder.mkdir(exist_ok=True)
    download = store.add(url, str(folder), state=DownloadState.ACTIVE, **fields)
    run = Transfer(store, download.id, settings)
    thread = threading.Thread(target=run.run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the transfer did not end"
    return store.get(download.id)


def saved(download: Download) -> bytes:
    """The file a completed download saved."""
    assert download.state is DownloadState.COMPLETED, (download.state, download.error)
    assert download.path is not None
    return Path(download.path).read_bytes()
