"""`freight schedule` on a real daemon: the settings it stores hold the queue and set the
rate, as `status` and `get_settings` show. The windows are set around the real time of day
(an hour clear of now on each side), so no test waits for a time to come."""

from __future__ import annotations

import datetime as dt

from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data

MIB = 1024 * 1024


def window(start_in: int, end_in: int) -> str:
    """A window from ``start_in`` to ``end_in`` minutes from now, local time."""
    now = dt.datetime.now()
    return "-".join((now + dt.timedelta(minutes=m)).strftime("%H:%M") for m in (start_in, end_in))


def test_a_schedule_set_with_the_cli_holds_the_queue_and_sets_the_rate(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    held = daemon.cli("schedule", "queue", window(60, 120))
    assert held.returncode == 0, held.stderr
    assert "the queue is held" in held.stdout
    url = fault_server.add("/later.bin", data=make_data(64 * 1024, seed=3), etag="later")
    with daemon.client() as c:
        download = c.call("add", url=url)["id"]
        status = c.call("status")
        assert status["schedule"]["held"] is True and status["queued"] == 1
        assert c.call("get", id=download)["state"] == "queued"

        slow = daemon.cli("schedule", "limit", window(-60, 60), "1M")
        assert slow.returncode == 0, slow.stderr
        settings = c.call("get_settings")["settings"]
        assert settings["schedule_limits"] == [f"{window(-60, 60)}=1048576"]
        assert c.call("status")["global_limit"] == MIB
        assert "speed window" in daemon.cli("status").stdout

        cleared = daemon.cli("schedule", "clear")
        assert cleared.returncode == 0, cleared.stderr
        wait_for(lambda: c.call("get", id=download)["state"] == "completed")
        status = c.call("status")
        assert status["global_limit"] is None and status["schedule"]["held"] is False


def test_bad_windows_are_refused_in_the_words_typed(daemon: DaemonProcess) -> None:
    for args, words in [
        (("limit", "25:00-01:00", "1M"), "not a time of day: '25:00'"),
        (("limit", "01:00-02:00", "--", "-5M"), "a rate must be positive: '-5M'"),
        (("queue", "07:00-07:00"), "is empty"),
    ]:
        done = daemon.cli("schedule", *args)
        assert done.returncode == 2 and words in done.stderr, (args, done.stderr)
    assert daemon.cli("schedule", "limit", "09:00-18:00", "1M").returncode == 0
    overlap = daemon.cli("schedule", "limit", "17:00-19:00", "2M")
    assert overlap.returncode == 2
    assert "windows 09:00-18:00 and 17:00-19:00 overlap" in overlap.stderr
    again = daemon.cli("schedule", "limit", "09:00-18:00", "2M")  # the same span: a new rate
    assert "09:00-18:00  2.0 MiB/s" in again.stdout


def test_a_running_download_goes_back_to_the_queue_and_resumes_when_it_runs(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(4 * MIB, seed=11)
    url = fault_server.add("/running.bin", data=data, etag="run1", rate=1 * MIB)
    mine = fault_server.add("/mine.bin", data=make_data(2 * MIB, seed=12), etag="mine", rate=MIB)
    with daemon.client() as c:
        download = c.call("add", url=url, connections=1)["id"]
        paused_by_me = c.call("add", url=mine, connections=1)["id"]
        wait_for(lambda: (c.call("get", id=download)["done"] or 0) > 0, timeout=10)
        c.call("pause", ids=[paused_by_me])
        assert daemon.cli("schedule", "queue", window(60, 120)).returncode == 0
        wait_for(lambda: c.call("get", id=download)["state"] == "queued", timeout=10)
        row = c.call("get", id=download)
        assert 0 < row["done"] < len(data)  # kept, to resume from
        assert c.call("status")["active"] == 0
        assert daemon.cli("schedule", "clear", "queue").returncode == 0
        wait_for(lambda: c.call("get", id=download)["state"] == "completed", timeout=20)
        assert c.call("get", id=paused_by_me)["state"] == "paused"  # the user's pause stays
        final = c.call("get", id=download)
    with open(final["path"], "rb") as body:
        assert body.read() == data
