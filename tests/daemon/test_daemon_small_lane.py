"""Small files beside big ones (daemon/slots.py): a real daemon, the fault server, big
downloads slowed down so that they hold every ``max_active`` slot. The server counts the
connections in flight per path; each group of files is one path with a query per file."""

from __future__ import annotations

from pathlib import Path

from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data

SMALL = make_data(64 * 1024, seed=1)
BIG = make_data(4 * 1024 * 1024, seed=2)


def state(c, download_id: int) -> str:
    return c.call("get", id=download_id)["state"]


def add_big(c, fault_server: FaultServer, n: int) -> list[int]:
    fault_server.add("/big.bin", data=BIG, etag="big", rate=64 * 1024)  # ~64 s each
    return [c.call("add", url=fault_server.url(f"/big.bin?n={i}"), connections=1)["id"]
            for i in range(n)]


def test_small_downloads_pass_big_ones_that_hold_every_slot(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    # Each small answer waits 0.3 s for its first byte: those of a lane overlap.
    fault_server.add("/small.bin", data=SMALL, etag="s", latency=0.3)
    with daemon.client() as c:
        c.call("set_settings", settings={"max_active": 2, "max_small": 3})
        big = add_big(c, fault_server, 3)
        wait_for(lambda: [state(c, i) for i in big] == ["active", "active", "queued"])
        # The browser's size tells these are small: they start beside the big ones. One file
        # under nine queries, each with its size: duplicates but for `again`.
        small = [c.call("add", url=fault_server.url(f"/small.bin?n={i}"),
                        size_hint=len(SMALL), again=True)["id"] for i in range(9)]
        for i in small:
            wait_for(lambda i=i: state(c, i) == "completed", timeout=30)
            assert Path(c.call("get", id=i)["path"]).read_bytes() == SMALL
        # The big ones were not disturbed: the same two run, the third still waits.
        assert [state(c, i) for i in big] == ["active", "active", "queued"]
        small_stats = fault_server.stats("/small.bin")
        assert small_stats.requests == 9  # one request each
        assert 2 <= small_stats.max_concurrent <= 3  # a lane, bounded by max_small
        # Each big one was asked once by the small lane for its first MiB (which told its
        # size; its answer was closed after the head), then only max_active ran: two more
        # requests. (The server counts a closed answer as in flight until its next write
        # fails, so its own concurrency figure does not tell.)
        assert fault_server.stats("/big.bin").requests == 3 + 2
        assert [c.call("get", id=i)["size"] for i in big] == [len(BIG)] * 3  # shown, queued too
        c.call("cancel", ids=big)


def test_a_probe_that_shows_a_small_file_frees_its_big_slot(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(256 * 1024, seed=3)
    # Unknown size until the probe: each starts in the one big slot; its body takes ~1 s
    # after the head, long enough for the next one to start once the head says "small".
    fault_server.add("/p.bin", data=data, etag="p", rate=256 * 1024)
    with daemon.client() as c:
        # Without the lean reader no download runs on the loop (engine/quick.py): those of
        # unknown size take a big slot and are probed there, by the threads' engine.
        c.call("set_settings", settings={"max_active": 1, "max_small": 2, "lean_reader": False})
        ids = [c.call("add", url=fault_server.url(f"/p.bin?n={i}"))["id"] for i in range(6)]
        for i in ids:
            wait_for(lambda i=i: state(c, i) == "completed", timeout=40)
            assert Path(c.call("get", id=i)["path"]).read_bytes() == data
    stats = fault_server.stats("/p.bin")
    # Without the small lane, one at a time; with it, at most max_active + max_small (the
    # one being probed in the big slot and the small ones).
    assert 2 <= stats.max_concurrent <= 3


def test_pause_resume_cancel_and_restart_of_a_small_lane_download(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    slow_small = make_data(512 * 1024, seed=4)
    fault_server.add("/slow.bin", data=slow_small, etag="w", rate=32 * 1024)  # ~16 s
    with daemon.client() as c:
        c.call("set_settings", settings={"max_active": 1, "max_small": 2})
        big = add_big(c, fault_server, 1)
        wait_for(lambda: state(c, big[0]) == "active")
        a, b = (c.call("add", url=fault_server.url(f"/slow.bin?n={i}"),  # one file: `again`
                       size_hint=len(slow_small), again=True)["id"] for i in range(2))
        wait_for(lambda: state(c, a) == "active" and state(c, b) == "active")
        wait_for(lambda: c.call("get", id=a)["done"] > 0)
        assert c.call("pause", id=a) == {"ids": [a]}
        assert state(c, a) == "paused"  # the reply waits for its transfer to end
        assert c.call("resume", id=a) == {"ids": [a]}
        wait_for(lambda: state(c, a) == "active")  # its size is known: the small lane again
        part = c.call("get", id=b)["path"] + ".part"
        assert c.call("cancel", id=b) == {"ids": [b]}
        assert state(c, b) == "removed" and not Path(part).exists()
        assert state(c, big[0]) == "active"
    # A daemon that stops leaves the small one active; the next one resumes it beside the
    # big one (max_active 1 is taken by the big download).
    daemon.stop()
    daemon.start()
    with daemon.client() as c:
        assert state(c, a) == "active" and state(c, big[0]) == "active"
        fault_server.add("/slow.bin", data=slow_small, etag="w")  # full speed now
        wait_for(lambda: state(c, a) == "completed", timeout=40)
        assert Path(c.call("get", id=a)["path"]).read_bytes() == slow_small
        assert state(c, big[0]) == "active"
        c.call("cancel", ids=big)


def test_small_files_of_unknown_size_pass_a_big_one_and_a_big_one_waits_its_turn(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    # No size hint: only their one request tells these are small (engine/quick.py).
    datas = [make_data(20_000 + 997 * i, seed=10 + i) for i in range(20)]
    for i, data in enumerate(datas):
        fault_server.add(f"/u{i}.bin", data=data, etag=f"u{i}", latency=0.05)
    second = make_data(2 * 1024 * 1024, seed=5)
    fault_server.add("/second.bin", data=second, etag="two")
    with daemon.client() as c:
        c.call("set_settings", settings={"max_active": 1, "max_small": 4})
        big = add_big(c, fault_server, 1)
        wait_for(lambda: state(c, big[0]) == "active")
        later = c.call("add", url=fault_server.url("/second.bin"))["id"]
        small = [c.call("add", url=fault_server.url(f"/u{i}.bin"))["id"] for i in range(20)]
        for i, download_id in enumerate(small):
            wait_for(lambda d=download_id: state(c, d) == "completed", timeout=30)
            assert Path(c.call("get", id=download_id)["path"]).read_bytes() == datas[i]
            assert fault_server.stats(f"/u{i}.bin").requests == 1
        # The big one of unknown size was asked once, then waits for the big slot with
        # its size shown.
        row = c.call("get", id=later)
        assert row["state"] == "queued" and row["size"] == len(second)
        assert state(c, big[0]) == "active"
        c.call("cancel", ids=big)
        wait_for(lambda: state(c, later) == "completed", timeout=30)
        assert Path(c.call("get", id=later)["path"]).read_bytes() == second


def test_a_host_that_pushes_back_gets_fewer_connections_from_the_small_lane(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    # 80 small files from a host that answers 429 beyond 4 requests at once: the small
    # lane's first 32 requests meet the push-back, the host's cap comes down (as the
    # threads' engine lowers it, limits.HostCaps), and the rest are not sent into it.
    data = make_data(30_000, seed=40)
    fault_server.add("/p.bin", data=data, etag="p", rate=100_000, max_concurrent=4,
                     retry_after=0)
    with daemon.client() as c:
        c.call("set_settings", settings={"max_small": 32, "retry_base": 0.2, "retry_max": 2.0})
        ids = [c.call("add", url=fault_server.url(f"/p.bin?n={i}"))["id"] for i in range(80)]
        for download_id in ids:
            wait_for(lambda d=download_id: state(c, d) in ("completed", "failed"), timeout=90)
            row = c.call("get", id=download_id)
            assert row["state"] == "completed", row["error"]
            assert Path(row["path"]).read_bytes() == data
    refused = fault_server.stats("/p.bin").statuses.count(429)
    print("429 answers:", refused)
    # Measured: 7-9. ~60, and now and then a download out of tries, when the files handed
    # over were moved back to the small lane by their probes; ~134 without the lowered cap.
    assert refused < 30
