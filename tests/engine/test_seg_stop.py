"""Every stop ends within a second (issue 12), also while a worker waits for a response
head, sits in a backoff wait, or its download waits for a host slot; every worker thread is
joined before ``run`` returns. Against the fault server, whose heads here take 20 s."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from faultserver import make_data
from freight.engine.limits import HostCaps
from freight.models import DownloadState
from freight.store import Store

from .seg_support import MIB, add, start

BOUND = 1.5  # generous: the rule is one second


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()


def workers_of(download_id: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"dl{download_id}-w")]


def stop_and_time(running, reason: str) -> float:
    began = time.monotonic()
    running.transfer.stop(reason)
    running.join(10)
    return time.monotonic() - began


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the download never got there"
        time.sleep(0.01)


@pytest.mark.parametrize("reason", ["pause", "cancel", "shutdown"])
def test_a_stop_while_workers_wait_for_heads(fault_server, store, tmp_path, reason):
    data = make_data(8 * MIB, seed=1)
    # The probe is answered at once; every later request waits 20 s for its head.
    url = fault_server.add("/f.bin", data=data, etag="v1", latency=20, latency_after=1)
    download = add(store, url, tmp_path / "dl")
    running = start(store, download.id, connections=4, adaptive=False,
                    min_split_size=256 * 1024)
    wait_for(lambda: fault_server.stats("/f.bin").current >= 3)  # three heads awaited
    elapsed = stop_and_time(running, reason)
    assert elapsed < BOUND, f"{reason} took {elapsed:.2f}s"
    assert not workers_of(download.id), "a worker thread outlived run()"
    expected = {"pause": DownloadState.PAUSED, "cancel": DownloadState.REMOVED,
                "shutdown": DownloadState.ACTIVE}[reason]
    assert store.get(download.id).state is expected


def test_a_stop_during_a_backoff_wait(fault_server, store, tmp_path):
    data = make_data(4 * MIB, seed=2)
    # After the probe, 503 with Retry-After 30: the last connection waits 30 s to retry.
    url = fault_server.add("/f.bin", data=data, etag="v1", status_script=[None, *[503] * 50],
                           retry_after=30)
    download = add(store, url, tmp_path / "dl")
    running = start(store, download.id, connections=2, adaptive=False,
                    min_split_size=256 * 1024, retry_max=60)
    wait_for(lambda: running.transfer.progress().connections == 1
             and 503 in fault_server.stats("/f.bin").statuses)
    time.sleep(0.2)  # in the wait now
    elapsed = stop_and_time(running, "pause")
    assert elapsed < BOUND, f"the pause took {elapsed:.2f}s"
    assert not workers_of(download.id)
    assert store.get(download.id).state is DownloadState.PAUSED


def test_a_stop_while_waiting_for_a_host_slot(fault_server, store, tmp_path):
    data = make_data(4 * MIB, seed=3)
    url = fault_server.add("/f.bin", data=data, etag="v1", rate=1 * MIB)
    caps = HostCaps(1)
    assert caps.acquire("127.0.0.1")  # another download holds the host's only slot
    download = add(store, url, tmp_path / "dl")
    running = start(store, download.id, hosts=caps, connections=4, adaptive=False,
                    min_split_size=256 * 1024)
    # The probe's connection was open already; after its first window it gives the slot
    # back, and the download waits for one.
    wait_for(lambda: running.transfer.progress().connections == 0
             and running.transfer.progress().done > 0)
    time.sleep(0.2)
    elapsed = stop_and_time(running, "shutdown")
    assert elapsed < BOUND, f"the shutdown took {elapsed:.2f}s"
    assert not workers_of(download.id)
    assert caps.active("127.0.0.1") == 1  # only the other download's


def test_a_stop_while_a_kept_alive_connection_waits_for_a_head(fault_server, store, tmp_path):
    """The third request goes out on a connection kept alive from the first two (a worker's
    next window): its head takes 20 s, and the stop must not wait for it."""
    data = make_data(12 * MIB, seed=4)
    url = fault_server.add("/f.bin", data=data, etag="v1", rate=4 * MIB, latency=20,
                           latency_after=2)
    download = add(store, url, tmp_path / "dl")
    running = start(store, download.id, connections=2, adaptive=False,
                    min_split_size=256 * 1024)
    wait_for(lambda: fault_server.stats("/f.bin").requests >= 3)
    stats = fault_server.stats("/f.bin")
    assert stats.log[2].connection in {r.connection for r in stats.log[:2]}  # kept alive
    time.sleep(0.2)
    elapsed = stop_and_time(running, "pause")
    assert elapsed < BOUND, f"the pause took {elapsed:.2f}s"
    assert not workers_of(download.id)


def test_a_failing_checkpoint_ends_the_workers_too(fault_server, store, tmp_path, monkeypatch):
    """The control loop's own failure (here the store refuses a checkpoint) ends the attempt
    at once: run() does not wait for the workers to fetch the rest of the file."""
    data = make_data(16 * MIB, seed=7)
    url = fault_server.add("/f.bin", data=data, etag="v1", rate=1 * MIB)
    download = add(store, url, tmp_path / "dl")
    from freight.errors import FreightError

    def refuse(*args, **kwargs):
        raise FreightError("the database refused the checkpoint")

    monkeypatch.setattr(store, "save_progress", refuse)
    began = time.monotonic()
    running = start(store, download.id, connections=4, adaptive=False,
                    min_split_size=256 * 1024)
    result = running.join(10)
    assert time.monotonic() - began < 4  # 16 MiB at 4 MiB/s would take 4 s
    assert result.state is DownloadState.FAILED
    assert not workers_of(download.id)
