"""Small files on the event loop (engine/quick.py) against the fault server: the engine's rules
hold on this path too, and what the loop cannot finish alone goes to the threads' engine.

The property test draws a server's answer (its size, framing, validators, a fault) and runs
the download as the scheduler does (quick_support.Loop.run). At the end, whatever was drawn:
a completed download holds exactly the file's bytes under one name and nothing else is
left; any other end leaves nothing under a final name; a download the loop could have
finished alone was finished in one request; an answer no retry mends is not asked twice;
secrets never go to another origin.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from faultserver import FaultServer, make_data
from freight.config import EngineSettings
from freight.engine.quick import HandOver
from freight.engine.transfer import Transfer
from freight.models import DownloadState
from freight.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .quick_support import Loop, add
from .wire_support import FAST

S = DownloadState
SMALL = 128 * 1024  # the lane's bound in these tests: files on both sides of it stay tiny
SETTINGS = EngineSettings(**{**FAST, "min_split_size": 64 * 1024})
SECRETS = {"Cookie": "session=zebra", "Authorization": "Bearer quokka"}

SIZES = [0, 1, 1000, 70_000, SMALL, SMALL + 1, 300_000]
FRAMINGS = ["ranges", "ignore_range", "no_length", "chunked", "gzip", "star_total", "max_body"]
FAULTS = [None, "drop", "503", "404", "410", "interim", "redirect", "cross_redirect",
          "extra_bytes", "disposition"]


def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def plain(framing: str, fault: str | None, size: int) -> bool:
    """Whether the answer is one the loop finishes alone: a framed identity body that is
    the whole file, at most SMALL bytes, and no fault that a retry must mend."""
    return (
        framing in ("ranges", "ignore_range", "max_body")
        and fault in (None, "interim", "redirect", "cross_redirect", "extra_bytes",
                      "disposition")
        and size <= SMALL
        and not (framing == "max_body" and size > 64 * 1024)
    )


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.sampled_from(SIZES),
    framing=st.sampled_from(FRAMINGS),
    fault=st.sampled_from(FAULTS),
    etag=st.booleans(),
    seed=st.integers(0, 3),
)
def test_any_answer_ends_right(
    fault_server: FaultServer, other_fault_server: FaultServer, size: int, framing: str,
    fault: str | None, etag: bool, seed: int,
) -> None:
    data = make_data(size, seed=seed)
    path = f"/f{time.monotonic_ns()}.bin"
    behaviour: dict[str, object] = {"etag": "v1"} if etag else {}
    if framing != "ranges":
        behaviour[framing] = "always" if framing == "gzip" else (
            64 * 1024 if framing == "max_body" else True)
    if fault == "drop" and size > 10:
        behaviour["drop_after"] = {"times": 1, "bytes": size // 2}
    elif fault in ("503", "404", "410"):
        behaviour["status_script"] = [int(fault)] if fault == "503" else [int(fault)] * 9
    elif fault == "interim":
        behaviour["interim"] = [103]
    elif fault == "extra_bytes":
        behaviour["extra_bytes"] = 5
    elif fault == "disposition":
        behaviour["content_disposition"] = 'attachment; filename="named.dat"'
    url = fault_server.add(path, data=data, **behaviour)
    target = None
    if fault == "redirect":
        url = fault_server.add(path + "-r", redirect_to=path)
    elif fault == "cross_redirect":
        target = other_fault_server.host_alias_url(path)
        other_fault_server.add(path, data=data, **behaviour)
        url = fault_server.add(path + "-r", redirect_to=target)

    home = Path(tempfile.mkdtemp())
    store = Store(home / "freight.db")
    loop = Loop(store, SETTINGS)
    try:
        download = add(store, home, url, headers=SECRETS if fault == "cross_redirect" else {})
        ended = loop.run(download, small_size=SMALL)
    finally:
        loop.close()
        store.close()
    row, folder = ended.download, home / "dl"
    try:
        if row.state is S.COMPLETED:
            assert row.path is not None and Path(row.path).read_bytes() == data
            assert files_in(folder) == [row.name], "only the file is left"
            if fault == "disposition" and size > 0:  # a 416 for an empty file has no name
                assert row.name == "named.dat"
        else:
            assert all(name.endswith(".part") for name in files_in(folder)), files_in(folder)
        served = (other_fault_server if target else fault_server).stats(path)
        if plain(framing, fault, size):
            assert ended.handed_over is None, ended.handed_over
            assert row.state is S.COMPLETED and served.requests == 1
            assert served.connections == 1
        if fault in ("404", "410"):
            assert row.state is S.FAILED and f"HTTP {fault}" in (row.error or "")
            assert served.requests == 1, "an answer no retry mends is not asked twice"
        else:
            assert row.state is S.COMPLETED, (row.state, row.error)
        if target is not None:
            for record in served.log:
                assert not {"cookie", "authorization"} & set(record.headers), record
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def loop_store(tmp_path: Path):
    store = Store(tmp_path / "freight.db")
    loop = Loop(store, SETTINGS)
    yield loop, store
    loop.close()
    store.close()


def test_small_files_of_one_host_share_kept_alive_connections(fault_server, loop_store, tmp_path):
    loop, store = loop_store
    data = make_data(20_000, seed=1)
    fault_server.add("/one.bin", data=data, etag="v1")
    for i in range(30):
        ended = loop.run(add(store, tmp_path, fault_server.url(f"/one.bin?n={i}")))
        assert ended.handed_over is None and Path(ended.download.path).read_bytes() == data
    stats = fault_server.stats("/one.bin")
    assert stats.requests == 30
    assert stats.connections == 1  # one after the other: the same connection each time


def test_a_connection_the_server_closed_is_replaced_on_the_next_download(
    fault_server, loop_store, tmp_path
):
    loop, store = loop_store
    data = make_data(5_000, seed=2)
    fault_server.add("/close.bin", data=data, headers={"Connection": "close"})
    fault_server.add("/keep.bin", data=data)
    for path in ("/keep.bin", "/close.bin", "/keep.bin", "/close.bin", "/keep.bin"):
        ended = loop.run(add(store, tmp_path, fault_server.url(path)))
        assert ended.handed_over is None and Path(ended.download.path).read_bytes() == data


def test_a_bigger_file_is_handed_over_with_its_size_and_nothing_written(
    fault_server, loop_store, tmp_path
):
    loop, store = loop_store
    fault_server.add("/big.bin", data=make_data(SMALL + 1), etag="v1")
    download = add(store, tmp_path, fault_server.url("/big.bin"))
    outcome = loop.start(loop.quick(download, SMALL)).result(10)
    assert outcome == HandOver("not a small file", SMALL + 1)
    assert files_in(tmp_path / "dl") == []  # no name claimed, no part
    assert store.get(download.id).state is S.ACTIVE  # the scheduler decides what follows


def test_a_stop_while_waiting_for_the_answer(fault_server, loop_store, tmp_path):
    loop, store = loop_store
    for reason, state in (("pause", S.PAUSED), ("cancel", S.REMOVED)):
        fault_server.add(f"/{reason}.bin", data=b"x" * 1000, latency=30)
        download = add(store, tmp_path, fault_server.url(f"/{reason}.bin"))
        run = loop.quick(download, SMALL)
        pending = loop.start(run)
        deadline = time.monotonic() + 10
        while fault_server.stats(f"/{reason}.bin").current == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        loop.loop.call_soon_threadsafe(run.stop, reason)
        ended = pending.result(10)
        assert not isinstance(ended, HandOver) and ended.state is state
        assert files_in(tmp_path / "dl") == []


def test_a_stop_while_the_body_comes_removes_the_claimed_part_on_cancel(
    fault_server, loop_store, tmp_path
):
    loop, store = loop_store
    fault_server.add("/trickle.bin", data=make_data(60_000), etag="v1",
                     stall_after=1000, stall_seconds=30)
    download = add(store, tmp_path, fault_server.url("/trickle.bin"))
    run = loop.quick(download, SMALL)
    pending = loop.start(run)
    deadline = time.monotonic() + 10
    while store.get(download.id).name is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert files_in(tmp_path / "dl") == ["trickle.bin.part"]  # the name is claimed first
    loop.loop.call_soon_threadsafe(run.stop, "cancel")
    assert pending.result(10).state is S.REMOVED
    assert files_in(tmp_path / "dl") == []


def test_a_checksum_mismatch_keeps_nothing_under_the_name(fault_server, loop_store, tmp_path):
    loop, store = loop_store
    fault_server.add("/sum.bin", data=b"the real bytes")
    download = add(store, tmp_path, fault_server.url("/sum.bin"), checksum="sha256:" + "0" * 64)
    ended = loop.run(download)
    assert ended.handed_over is None
    assert ended.download.state is S.FAILED and "mismatch" in (ended.download.error or "")
    assert files_in(tmp_path / "dl") == []


def test_many_at_once_are_finished_in_batches(fault_server, loop_store, tmp_path):
    # 30 downloads whose answers come together: the finisher records them in batches, each
    # one completed with its own bytes and name.
    loop, store = loop_store
    datas = [make_data(3000 + i, seed=i) for i in range(30)]
    for i, data in enumerate(datas):
        fault_server.add(f"/b{i}.bin", data=data, latency=0.2)
    runs = [loop.start(loop.quick(add(store, tmp_path, fault_server.url(f"/b{i}.bin")), SMALL))
            for i in range(30)]
    ends = [r.result(30) for r in runs]
    for i, ended in enumerate(ends):
        assert ended.state is S.COMPLETED and ended.name == f"b{i}.bin"
        assert Path(ended.path).read_bytes() == datas[i]
    assert sorted(files_in(tmp_path / "dl")) == sorted(f"b{i}.bin" for i in range(30))


def test_a_pause_during_the_body_keeps_what_came_for_the_resume(
    fault_server, loop_store, tmp_path
):
    loop, store = loop_store
    data = make_data(100_000, seed=5)
    fault_server.add("/half.bin", data=data, etag="v1", stall_after={"times": 1, "bytes": 40_000},
                     stall_seconds=30)
    download = add(store, tmp_path, fault_server.url("/half.bin"))
    run = loop.quick(download, SMALL)
    pending = loop.start(run)
    deadline = time.monotonic() + 10
    while run.progress().done < 40_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.loop.call_soon_threadsafe(run.stop, "pause")
    paused = pending.result(10)
    assert paused.state is S.PAUSED and paused.done == 40_000
    assert store.load_segments(download.id)[0].pos == 40_000  # synced and recorded
    store.set_state(download.id, S.ACTIVE)
    Transfer(store, download.id, SETTINGS).run()  # the resume, as the scheduler runs it
    resumed = store.get(download.id)
    assert resumed.state is S.COMPLETED and Path(resumed.path).read_bytes() == data
    assert fault_server.stats("/half.bin").ranges[-1][0] == 40_000  # only the rest was asked
