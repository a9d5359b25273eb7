"""Host slots (issue 12): downloads that share a host never spin waiting for a slot, never
run more connections than the host's cap, and a cap lowered by 429s comes back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from faultserver import make_data
from freight.engine.limits import HostCaps
from freight.store import Store

from .seg_support import MIB, add, saved, start


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()


@pytest.fixture
def thread_starts(monkeypatch):
    """Every worker thread started (named dl<ID>-w<N>), counted as it starts."""
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        if self.name.startswith("dl"):
            started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    return started


def test_downloads_without_a_free_slot_wait_instead_of_spinning(
    fault_server, store, tmp_path, thread_starts
):
    """Three downloads, four connections each, two slots for their host: the ones without a
    slot wait (the old code started thousands of threads a second that gave up at once)."""
    caps = HostCaps(2)
    files = []
    for i in range(3):
        data = make_data(4 * MIB, seed=i)
        url = fault_server.add(f"/f{i}.bin", data=data, etag=f"v{i}", rate=2 * MIB)
        files.append((data, add(store, url, tmp_path / "dl")))
    began = time.monotonic()
    running = [
        start(store, d.id, hosts=caps, connections=4, adaptive=False,
              min_split_size=256 * 1024)
        for _, d in files
    ]
    most = 0
    while any(r.thread.is_alive() for r in running):
        most = max(most, caps.active("127.0.0.1"))
        time.sleep(0.005)
    elapsed = time.monotonic() - began
    for (data, _), r in zip(files, running, strict=True):
        assert saved(r.join()) == data
    # Beyond the cap, only the probes' connections (each download's first, already open when
    # it is counted): workers themselves start only with a free slot.
    assert most <= 2 + 3, f"{most} connections to a host capped at 2"
    assert caps.active("127.0.0.1") == 0
    per_second = len(thread_starts) / elapsed
    assert len(thread_starts) <= 40, f"{len(thread_starts)} threads in {elapsed:.1f}s"
    print(f"{len(thread_starts)} worker threads in {elapsed:.2f}s ({per_second:.0f}/s)")


def test_a_cap_lowered_by_429s_comes_back(fault_server, store, tmp_path):
    """A burst of 429s lowers the host's cap; after a quiet period the next download of the
    host gets its connections again (the old cap stayed low for the process's life). The
    caps' clock is the test's: it stands still while the downloads run."""
    now = [0.0]
    caps = HostCaps(8, clock=lambda: now[0], recover_after=10)
    data = make_data(4 * MIB, seed=5)
    # The probe passes, then five ranges are refused: connections retire, the cap drops.
    url = fault_server.add(
        "/f.bin", data=data, etag="v1", status_script=[None, *[429] * 5], retry_after=0,
        rate=4 * MIB,
    )
    settings = {"connections": 8, "adaptive": False, "min_split_size": 128 * 1024}
    first = add(store, url, tmp_path / "dl")
    assert saved(start(store, first.id, hosts=caps, **settings).join()) == data
    lowered = caps.cap("127.0.0.1")
    assert lowered < 8
    now[0] += 10 * 4  # quiet for four periods: the cap doubled back to the default
    assert caps.cap("127.0.0.1") == 8
    fault_server.add("/g.bin", data=data, etag="v2", rate=4 * MIB)
    second = add(store, fault_server.url("/g.bin"), tmp_path / "dl")
    assert saved(start(store, second.id, hosts=caps, **settings).join()) == data
    assert fault_server.stats("/g.bin").max_concurrent > lowered


def test_a_running_download_gets_its_connections_back(fault_server, store, tmp_path):
    """The cap recovers while the download runs: the download climbs back towards the
    connections it had before the 429s (as far as there is work to share), never beyond."""
    now = [0.0]
    caps = HostCaps(8, clock=lambda: now[0], recover_after=10)
    data = make_data(12 * MIB, seed=6)
    url = fault_server.add(
        "/f.bin", data=data, etag="v1", status_script=[None, *[429] * 5], retry_after=0,
        rate=1 * MIB,
    )
    download = add(store, url, tmp_path / "dl")
    running = start(store, download.id, hosts=caps, connections=6, adaptive=False,
                    min_split_size=128 * 1024)
    deadline = time.monotonic() + 10
    while fault_server.stats("/f.bin").statuses.count(429) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)
    lowered = running.transfer.progress().connections
    assert lowered < 6
    now[0] += 10 * 4
    most = 0
    while running.thread.is_alive():
        most = max(most, running.transfer.progress().connections)
        time.sleep(0.01)
    assert saved(running.join()) == data
    assert lowered + 2 <= most <= 6, f"{lowered} connections after the 429s, {most} after"
