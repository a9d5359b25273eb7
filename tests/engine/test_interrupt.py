"""Interrupting a real `freight get` (SIGINT, SIGTERM, SIGKILL) and resuming it.

The server throttles each connection so that the download is caught mid-way; it counts every
body byte it sends, which is how "a resume re-fetches little" is measured. After every
interruption the recorded segments are checked against the .part file: recorded progress must
never exceed what is on disk.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from faultserver import make_data
from freight.engine.files import boot_id
from freight.store import Store

from .conftest import sha256

MIB = 1024 * 1024
SIZE = 4 * MIB
RATE = 256 * 1024  # per connection; 4 connections: about 1 MiB/s
# Resumes run faster but still paced: an unpaced loopback server pushes megabytes into the
# socket buffers of a connection whose piece was split meanwhile, and counts them as sent
# although the client never reads them.
FAST = 4 * 1024 * 1024


def check_recorded_bytes_are_on_disk(fr, data: bytes) -> int:
    """Every recorded [start, pos) of the .part holds exactly the file's bytes: the synced
    checkpoint's and the unsynced record's (trusted in this boot). Returns what a resume
    starts from."""
    store = Store(fr.db)
    try:
        download = store.get(1)
        synced = store.load_segments(1)
        resume = store.resume_segments(1, boot_id())
    finally:
        store.close()
    assert download.part_path is not None
    with open(download.part_path, "rb") as part:
        for s in [*synced, *resume]:
            part.seek(s.start)
            assert part.read(s.pos - s.start) == data[s.start : s.pos], f"segment {s}"
    assert sum(s.pos - s.start for s in synced) == download.done
    recorded = sum(s.pos - s.start for s in resume)
    assert recorded >= download.done
    return recorded


def serve(fault_server, data: bytes, throttled: bool) -> str:
    """(Re)publish the same file (same ETag), slow or fast; stats start from zero."""
    return fault_server.add("/movie.mkv", data=data, etag="v1", rate=RATE if throttled else FAST)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_and_a_rerun_resumes(fr, fault_server, kill_after, sig):
    data = make_data(SIZE, seed=30)
    url = serve(fault_server, data, throttled=True)
    proc = fr.start(url, "-x", "4")
    kill_after(proc)
    fr.wait_done(proc, MIB // 2)
    res = fr.finish(proc, sig)
    assert res.code == 130, res
    assert res.record["state"] == "paused"
    assert fr.download().state == "paused"
    recorded = check_recorded_bytes_are_on_disk(fr, data)
    assert recorded >= MIB // 2
    first = fault_server.wait_idle("/movie.mkv").bytes_sent
    # An orderly stop checkpoints what it had: at most a read buffer (64 KiB) per connection
    # plus what was on the wire was fetched in vain.
    assert first - recorded <= 4 * (64 + 32) * 1024

    serve(fault_server, data, throttled=False)
    res2 = fr.run(url, "-x", "4")
    assert res2.code == 0, res2
    assert res2.record["id"] == 1  # the same download, resumed
    assert sha256((fr.dl / "movie.mkv").read_bytes()) == sha256(data)
    second = fault_server.wait_idle("/movie.mkv")
    assert SIZE - recorded <= second.bytes_sent < (SIZE - recorded) * 1.05
    assert all(r != (0, None) for r in second.ranges)  # no fresh probe from byte 0


def test_sigkill_then_resume_refetches_little(fr, fault_server, kill_after):
    data = make_data(SIZE, seed=31)
    url = serve(fault_server, data, throttled=True)
    proc = fr.start(url, "-x", "4")
    kill_after(proc)
    fr.wait_done(proc, MIB)
    time.sleep(0.15)  # between two checkpoints, probably
    res = fr.finish(proc, signal.SIGKILL)
    assert res.code == -signal.SIGKILL
    assert fr.download().state == "active"  # nobody could record anything else
    recorded = check_recorded_bytes_are_on_disk(fr, data)
    first = fault_server.wait_idle("/movie.mkv").bytes_sent

    serve(fault_server, data, throttled=False)
    res2 = fr.run(url, "-x", "4")
    assert res2.code == 0, res2
    assert sha256((fr.dl / "movie.mkv").read_bytes()) == sha256(data)
    second = fault_server.wait_idle("/movie.mkv").bytes_sent
    assert SIZE - recorded <= second < (SIZE - recorded) * 1.05
    # Lost to the kill: about one checkpoint interval (0.1 s) of traffic at ~1 MiB/s.
    assert first + second < SIZE * 1.1, (first, second, recorded)


def test_repeated_sigkill_still_ends_with_the_right_file(fr, fault_server, kill_after):
    size = 3 * MIB
    data = make_data(size, seed=32)
    url = serve(fault_server, data, throttled=True)
    sent = 0
    recorded = 0
    for _round in range(4):
        proc = fr.start(url, "-x", "4")
        kill_after(proc)
        recorded = fr.wait_done(proc, recorded + 200_000)
        fr.finish(proc, signal.SIGKILL)
        recorded = check_recorded_bytes_are_on_disk(fr, data)
        sent += fault_server.wait_idle("/movie.mkv").bytes_sent
        serve(fault_server, data, throttled=True)  # fresh counters
    assert recorded < size, "the download finished before the last kill"
    serve(fault_server, data, throttled=False)
    res = fr.run(url, "-x", "4")
    assert res.code == 0, res
    assert sha256((fr.dl / "movie.mkv").read_bytes()) == sha256(data)
    sent += fault_server.wait_idle("/movie.mkv").bytes_sent
    assert sent < size * 1.3, sent
    assert fr.files() == ["movie.mkv"]


def test_expired_link_on_resume_needs_refresh(fr, fault_server, kill_after):
    data = make_data(SIZE, seed=33)
    url = serve(fault_server, data, throttled=True)
    proc = fr.start(url, "-x", "2")
    kill_after(proc)
    fr.wait_done(proc, 100_000)
    fr.finish(proc, signal.SIGKILL)
    recorded = check_recorded_bytes_are_on_disk(fr, data)
    # The signed URL expired meanwhile: every request now gets 403.
    fault_server.add("/movie.mkv", data=data, etag="v1", expires_at=time.time() - 1)
    res = fr.run(url, "-x", "2")
    assert res.code == 3, res
    assert res.record["state"] == "needs_refresh"
    download = fr.download()
    assert download.state == "needs_refresh"
    assert download.error_kind == "needs_refresh"
    # The data is kept for when a fresh link comes.
    assert os.path.exists(download.part_path)
    assert check_recorded_bytes_are_on_disk(fr, data) == recorded


def test_expired_link_message_on_the_terminal(fr, fault_server, kill_after):
    data = make_data(2 * MIB, seed=34)
    url = serve(fault_server, data, throttled=True)
    proc = fr.start(url, "-x", "2")
    kill_after(proc)
    fr.wait_done(proc, 50_000)
    fr.finish(proc, signal.SIGINT)
    fault_server.add("/movie.mkv", data=data, etag="v1", expires_at=time.time() - 1)
    res = fr.run(url, json_out=False)
    assert res.code == 3, res
    assert "expired" in res.stderr.lower() or "refresh" in res.stderr.lower()


def test_a_second_process_never_writes_the_same_download(fr, fault_server, kill_after):
    """`freight get` of a download another Freight process is fetching changes nothing: the
    .part is locked (flock) by its writer, and the second process says so and exits 1."""
    data = make_data(SIZE, seed=31)
    url = serve(fault_server, data, throttled=True)
    first = fr.start(url, "-x", "4")
    kill_after(first)
    fr.wait_done(first, MIB // 4)
    second = fr.run(url, "-x", "4")
    assert second.code == 1, second
    assert "another Freight process" in second.stderr
    assert fr.download().state == "active"  # the first process's download, untouched
    res = fr.finish(first, None)
    assert res.code == 0, res
    assert sha256((fr.dl / "movie.mkv").read_bytes()) == sha256(data)
