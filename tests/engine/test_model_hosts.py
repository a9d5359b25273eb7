"""Two downloads from one host share its connection slots (limits.HostCaps), against the
model's server: the one that finds no free slot must wait for one, never spin.

The rule (DESIGN, rules of the engine): workers never exceed the free connection slots of
their host; a starved download waits, it never spins (seen for real: thousands of
short-lived threads a second, 100 % CPU, while it crawled on one connection).
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from freight.engine.limits import HostCaps
from freight.engine.transfer import Transfer
from freight.models import DownloadState
from freight.store import Store

from .test_model_transfer import SETTINGS, URL, ModelServer, make_version

#: Threads one download may start over its life here: its connections, a few more for the
#: retries and splits of a file of some KiB; a spinning download starts thousands.
THREAD_BOUND = 40


def test_a_starved_download_waits_for_a_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real = threading.Thread

    class Counted(real):  # type: ignore[misc, valid-type]
        def start(self) -> None:
            started.append(self.name)
            super().start()

    monkeypatch.setattr(threading, "Thread", Counted)
    settings = dataclasses.replace(SETTINGS, connections=2, max_connections=2)
    caps = HostCaps(2)
    with tempfile.TemporaryDirectory(prefix="freight-model-") as tmp:
        store = Store(Path(tmp) / "freight.db")
        try:
            (Path(tmp) / "dl").mkdir()
            slow = store.add(URL, str(Path(tmp) / "dl"), state=DownloadState.ACTIVE)
            store.update(slow.id, limit=40_000)  # about a second for 48 KB: it holds both slots
            starved = store.add(URL, str(Path(tmp) / "dl"), state=DownloadState.ACTIVE)
            store.update(starved.id, limit=20_000)  # it needs its connections for a while
            ends: dict[int, Any] = {}

            def run(download_id: int, size: int) -> None:
                server = ModelServer(make_version(download_id, size, "strong"))
                transfer = Transfer(store, download_id, settings, host_caps=caps,
                                    source=server)
                ends[download_id] = transfer.run().state

            first = real(target=run, args=(slow.id, 48_000), daemon=True)
            first.start()
            time.sleep(0.2)  # the slow one has both slots now
            second = real(target=run, args=(starved.id, 30_000), daemon=True)
            second.start()
            first.join(30)
            second.join(30)
            assert ends == {slow.id: DownloadState.COMPLETED,
                            starved.id: DownloadState.COMPLETED}, ends
        finally:
            store.close()
    spawned = [name for name in started if name.startswith(f"dl{starved.id}-w")]
    assert len(spawned) <= THREAD_BOUND, f"{len(spawned)} worker threads started"
