"""After a download: ``clear`` (and `freight clear`), ``restart`` (and `freight restart`),
against a real daemon and the fault server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from freight import rpc
from freight.errors import IllegalTransition

PARKED = "http://127.0.0.1:9/parked.bin"  # never fetched: added paused


def freight(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freight", *args], env=daemon.env,
                          capture_output=True, text=True, timeout=60)


def state_of(c: Any, download_id: int, *states: str) -> dict[str, Any]:
    return wait_for(lambda: (row := c.call("get", id=download_id))["state"] in states and row)


def test_clear_removes_the_records_of_completed_downloads_and_keeps_their_files(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(20_000)
    urls = [fault_server.add(f"/c{i}.bin", data=data) for i in range(2)]
    with daemon.client() as c:
        done = [c.call("add", url=u)["id"] for u in urls]
        paths = [state_of(c, i, "completed")["path"] for i in done]
        parked = c.call("add", url=PARKED, paused=True)["id"]
        cancelled = c.call("add", url=PARKED + "?2", paused=True)["id"]
        c.call("cancel", id=cancelled)
        c.call("subscribe", events=["download.removed"])
        answer = c.call("clear")
        assert sorted(answer["ids"]) == sorted(done)
        heard = set()
        for _event, params in c.notifications(timeout=10):
            heard.add(params["id"])
            if heard == set(done):
                break
        left = {d["id"]: d["state"] for d in c.call("list")["downloads"]}
        # Failed and cancelled records stay: they can still be resumed or restarted.
        assert left == {parked: "paused", cancelled: "removed"}
        assert c.call("clear") == {"ids": []}
    for path in paths:
        assert Path(path).read_bytes() == data


def test_freight_clear_says_what_it_cleared(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    url = fault_server.add("/one.bin", data=b"x" * 1000)
    with daemon.client() as c:
        state_of(c, c.call("add", url=url)["id"], "completed")
    first = freight(daemon, "clear")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "cleared 1 completed download"
    again = freight(daemon, "clear")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "nothing to clear: no completed downloads"


def test_a_failed_download_restarts_from_zero_and_completes(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(300_000)
    url = fault_server.add("/f.bin", data=data, status_script=[404])
    with daemon.client() as c:
        download_id = c.call("add", url=url)["id"]
        failed = state_of(c, download_id, "failed")
        assert failed["error"]
        assert c.call("restart", id=download_id) == {"id": download_id, "state": "queued"}
        row = state_of(c, download_id, "completed")
        assert row["error"] is None and row["url"] == url
        assert Path(row["path"]).read_bytes() == data


def test_a_cancelled_download_restarts_in_its_folder_with_its_headers(
    daemon: DaemonProcess, fault_server: FaultServer, tmp_path: Path
) -> None:
    data = make_data(50_000)
    url = fault_server.add("/h.bin", data=data, require_header=("X-Token", "abc"))
    folder = tmp_path / "elsewhere"
    with daemon.client() as c:
        download_id = c.call("add", url=url, dir=str(folder), headers={"X-Token": "abc"},
                             paused=True)["id"]
        c.call("cancel", id=download_id)
        assert c.call("get", id=download_id)["state"] == "removed"
        out = freight(daemon, "restart", str(download_id))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"restarted {download_id}: h.bin (from zero)"
        row = state_of(c, download_id, "completed")
        assert row["dir"] == str(folder)
        assert (folder / "h.bin").read_bytes() == data


def test_a_completed_download_restarts_only_when_asked_to_download_again(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(10_000)
    url = fault_server.add("/again.bin", data=data)
    with daemon.client() as c:
        first = c.call("add", url=url)["id"]
        path = Path(state_of(c, first, "completed")["path"])
        with pytest.raises(IllegalTransition) as refused:
            c.call("restart", id=first)
        assert refused.value.data["code"] == rpc.ILLEGAL_TRANSITION
        assert "again" in str(refused.value)
        copy = c.call("restart", id=first, again=True)
        assert copy["id"] != first and copy["state"] == "queued"
        second = state_of(c, copy["id"], "completed")
        assert second["url"] == url and second["dir"] == str(path.parent)
        assert Path(second["path"]) != path  # a new copy beside the first, never over it
        assert Path(second["path"]).read_bytes() == data == path.read_bytes()
        assert c.call("get", id=first)["state"] == "completed"
    cli = freight(daemon, "restart", str(first))
    assert cli.returncode != 0 and "--again" in cli.stderr
    again = freight(daemon, "restart", "--again", str(first))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"downloading {first} again as ")


def test_restart_refuses_a_download_that_is_still_going(daemon: DaemonProcess) -> None:
    with daemon.client() as c:
        download_id = c.call("add", url=PARKED, paused=True)["id"]
        with pytest.raises(IllegalTransition):
            c.call("restart", id=download_id)
    assert os.path.exists(daemon.paths.database)
