"""Every API method against a real daemon process, with the state machine and the store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, wait_for
from freight import rpc
from freight.errors import IllegalTransition, InputError, NotFound
from freight.store import Store

URL = "http://127.0.0.1:9/file.bin"  # never fetched: these downloads are added paused


def snapshot(c) -> tuple:
    return (json.dumps(c.call("list", limit=10_000)), json.dumps(c.call("get_settings")))


def test_version_status_and_add_get_list(daemon: DaemonProcess) -> None:
    with daemon.client() as c:
        version = c.call("version")
        assert version == {"version": "0.1.0", "protocol": 1, "pid": daemon.proc.pid}
        one = c.call("add", url=URL, paused=True, name="a.bin", connections=4, limit=1000,
                     checksum="SHA256:" + "AB" * 32, headers={"X-Test": "1"},
                     cookies=[{"name": "sid", "value": "secret-cookie"}],
                     user_agent="UA/1", referrer="http://127.0.0.1/page")["id"]
        d = c.call("get", id=one)
        for key in ("id", "url", "name", "path", "state", "size", "done", "speed", "error",
                    "eta", "connections", "position", "dir"):
            assert key in d
        assert d["state"] == "paused" and d["connections"] == 4 and d["limit"] == 1000
        assert d["checksum"] == "sha256:" + "ab" * 32
        assert d["dir"] == str(daemon.home / "downloads")
        assert "secret-cookie" not in json.dumps(d)
        two = c.call("add", url=URL + "?2", paused=True, dir=str(daemon.home / "elsewhere"))["id"]
        listing = c.call("list")
        assert listing["total"] == 2 and [x["id"] for x in listing["downloads"]] == [one, two]
        assert c.call("list", offset=1, limit=1)["downloads"][0]["id"] == two
        assert c.call("list", states=["queued"])["total"] == 0
        status = c.call("status")
        assert status["paused"] == 2 and status["active"] == 0 and status["pid"] == daemon.proc.pid
        assert status["url"] == daemon.url
    # The cookie is stored only sealed.
    db = b"".join(p.read_bytes() for p in daemon.home.glob("freight.db*"))  # WAL too
    assert b"secret-cookie" not in db and b"X-Test" in db


def test_transitions_and_illegal_ones(daemon: DaemonProcess) -> None:
    with daemon.client() as c:
        a = c.call("add", url=URL, paused=True)["id"]
        b = c.call("add", url=URL + "?b", paused=True)["id"]
        assert c.call("pause", id=a) == {"ids": []}  # already paused: nothing changed
        assert c.call("cancel", ids=[a]) == {"ids": [a]}
        assert c.call("get", id=a)["state"] == "removed"
        before = snapshot(c)
        # removed → paused, removed → queued: illegal, and a batch with one bad id changes nothing
        with pytest.raises(IllegalTransition) as err:
            c.call("pause", ids=[b, a])
        assert err.value.data["code"] == rpc.ILLEGAL_TRANSITION
        assert err.value.data["state"] == "removed"
        with pytest.raises(IllegalTransition):
            c.call("resume", ids=[a])
        with pytest.raises(IllegalTransition):
            c.call("refresh", id=a, url=URL)
        with pytest.raises(NotFound):
            c.call("pause", ids=[b, 12345])
        assert snapshot(c) == before
        assert c.call("remove", id=a) == {"ids": [a]}
        with pytest.raises(NotFound):
            c.call("get", id=a)
        old = c.call("get", id=b)["position"]
        assert c.call("move", id=b, to="top")["position"] < old


def test_bad_params_change_nothing(daemon: DaemonProcess) -> None:
    bad = [
        ("add", {}),
        ("add", {"url": "ftp://127.0.0.1/x"}),
        ("add", {"url": "javascript:alert(1)"}),
        ("add", {"url": URL, "dir": "relative/dir"}),
        ("add", {"url": URL, "name": "../../etc/passwd"}),
        ("add", {"url": URL, "headers": {"X": "a\r\nInjected: 1"}}),
        ("add", {"url": URL, "headers": {"Bad Name": "v"}}),
        ("add", {"url": URL, "connections": 0}),
        ("add", {"url": URL, "connections": 65}),
        ("add", {"url": URL, "connections": True}),
        ("add", {"url": URL, "limit": -1}),
        ("add", {"url": URL, "checksum": "sha256:xyz"}),
        ("add", {"url": URL, "cookies": [{"name": "a"}]}),
        ("add", {"url": URL, "unknown": 1}),
        ("list", {"limit": 0}),
        ("list", {"states": ["bogus"]}),
        ("pause", {}),
        ("pause", {"id": 1, "ids": [1]}),
        ("pause", {"ids": []}),
        ("remove", {"id": 1, "delete_file": "yes"}),
        ("move", {"id": 1, "to": "sideways"}),
        ("set_limits", {}),
        ("set_limits", {"limit": 5}),
        ("set_limits", {"global_limit": 0}),
        ("set_settings", {"settings": {"max_active": 0}}),
        ("set_settings", {"settings": {"max_active": 2, "nope": 1}}),
        ("set_settings", {"settings": {"download_dir": "relative"}}),
        ("subscribe", {"events": ["download.nope"]}),
    ]
    with daemon.client() as c:
        c.call("add", url=URL, paused=True)
        before = snapshot(c)
        for method, params in bad:
            with pytest.raises(InputError) as err:
                c.call(method, **params)
            assert err.value.data["code"] == rpc.INVALID_PARAMS, (method, params)
        assert snapshot(c) == before


def test_settings_limits_and_events(daemon: DaemonProcess) -> None:
    with daemon.client() as c, daemon.client() as watcher:
        assert watcher.call("subscribe")["subscribed"] == list(rpc.EVENTS)
        settings = c.call("get_settings")["settings"]
        assert settings["max_active"] == 3
        changed = c.call("set_settings", settings={"max_active": 5, "notify": False})["settings"]
        assert changed["max_active"] == 5 and changed["notify"] is False
        assert c.call("set_limits", global_limit=2048) == {"global_limit": 2048}
        a = c.call("add", url=URL, paused=True)["id"]
        assert c.call("set_limits", id=a, limit=100) == {"global_limit": 2048}
        assert c.call("get", id=a)["limit"] == 100
        with pytest.raises(NotFound):
            c.call("set_limits", global_limit=1, id=999, limit=1)
        assert c.call("get_settings")["settings"]["global_limit"] == 2048  # unchanged
        c.call("cancel", id=a)
        c.call("remove", id=a)
        seen = []
        for event, _params in watcher.notifications(timeout=1.0):
            seen.append(event)
        assert seen.count("settings.changed") == 2
        assert "download.added" in seen and "download.state" in seen
        assert seen[-1] == "download.removed"


def test_pause_all_resume_all_and_open(daemon: DaemonProcess) -> None:
    with daemon.client() as c:
        ids = [c.call("add", url=URL + f"?{i}", paused=True)["id"] for i in range(3)]
        assert c.call("pause_all") == {"ids": []}
        c.call("set_settings", settings={"max_active": 1})
        with pytest.raises(InputError):
            c.call("open", id=ids[0])  # not completed: nothing to open
        resumed = c.call("resume_all")["ids"]
        assert sorted(resumed) == ids
        # One runs (against a closed port it retries); the others wait in the queue.
        wait_for(lambda: c.call("status")["active"] == 1)
        assert c.call("status")["queued"] == 2
        paused = c.call("pause_all")["ids"]
        assert sorted(paused) == ids
        assert {d["state"] for d in c.call("list")["downloads"]} == {"paused"}


def test_single_instance(daemon: DaemonProcess) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "freight", "daemon", "--no-tray", "--port", "0"],
        env=daemon.env, capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 1
    assert f"pid {daemon.proc.pid}" in second.stderr and daemon.url in second.stderr
    with daemon.client() as c:
        assert c.call("version")["pid"] == daemon.proc.pid


@pytest.mark.parametrize("how", ["sigterm", "sigint", "shutdown", "cli"])
def test_graceful_stop(tmp_path: Path, how: str) -> None:
    d = DaemonProcess(tmp_path / "home").start()
    with d.client() as c:
        c.call("add", url=URL, paused=True)
    started = time.monotonic()
    if how == "sigterm":
        code = d.stop(signal.SIGTERM)
    elif how == "sigint":
        code = d.stop(signal.SIGINT)
    elif how == "shutdown":
        with d.client() as c:
            assert c.call("shutdown") == {"ok": True}
        code = d.proc.wait(10)
        d.stderr.close()
    else:
        result = d.cli("stop")
        assert result.returncode == 0 and "stopped" in result.stdout
        code = d.proc.wait(10)
        d.stderr.close()
    assert code == 0, d.log()
    assert time.monotonic() - started < 5
    assert not d.paths.daemon_file.exists()
    assert "stopped in" in d.log()
    # It starts again on the same home, with the record kept.
    d2 = DaemonProcess(tmp_path / "home").start()
    try:
        with d2.client() as c:
            assert c.call("list")["total"] == 1
    finally:
        d2.stop()


def test_stale_daemon_file_after_kill(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "home").start()
    d.kill()
    assert d.paths.daemon_file.exists()  # left behind by SIGKILL
    status = d.cli("status")
    assert status.returncode == 1 and "not running" in status.stdout
    d2 = DaemonProcess(tmp_path / "home").start()  # the kernel freed the lock
    try:
        assert d2.info["pid"] != d.info["pid"]
    finally:
        d2.stop()


def test_cli_commands(daemon: DaemonProcess) -> None:
    cli = daemon.cli
    r = cli("status", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["running"] is True
    r = cli("add", URL, URL + "?2", "--paused", "--json", "-H", "Cookie: c=1", "--limit", "1M")
    assert r.returncode == 0, r.stderr
    ids = json.loads(r.stdout)["ids"]
    assert len(ids) == 2
    rows = json.loads(cli("ls", "--json").stdout)
    assert [x["limit"] for x in rows] == [1024 * 1024] * 2
    assert "paused" in cli("ls").stdout
    assert cli("move", str(ids[1]), "top").returncode == 0
    assert [x["id"] for x in json.loads(cli("ls", "--json").stdout)] == ids[::-1]
    assert cli("limit", "2M").stdout.strip() == "global limit: 2.0 MiB/s"
    assert cli("settings", "global_limit").stdout.strip() == str(2 * 1024 * 1024)
    assert cli("limit", "none").returncode == 0
    assert cli("settings", "global_limit").stdout.strip() == "null"
    assert cli("settings", "max_active", "2").stdout.strip() == "max_active = 2"
    r = cli("settings", "max_active", "0")
    assert r.returncode == 2 and "max_active" in r.stderr
    r = cli("pause", "999")
    assert r.returncode == 2 and "999" in r.stderr
    assert cli("pause").returncode == 2  # neither ids nor --all
    assert cli("cancel", "--all").returncode == 0
    r = cli("wait", *map(str, ids), "--timeout", "10")
    assert r.returncode == 1  # cancelled downloads count as failed for wait
    assert cli("rm", "--all").returncode == 0
    assert json.loads(cli("ls", "--json").stdout) == []
    r = cli("add", "not-a-url")
    assert r.returncode == 2 and "url" in r.stderr.lower()


def test_pipelined_calls_answer_in_order_with_errors_in_place(daemon: DaemonProcess) -> None:
    with daemon.client() as c:
        ids = [o["id"] for o in c.call_many(
            "add", [{"url": f"{URL}?{i}", "paused": True} for i in range(7)], window=3)]
        assert len(set(ids)) == 7
        assert [d["id"] for d in c.call("list")["downloads"]] == ids  # queued in the order sent
        asked = [{"id": ids[0]}, {"id": 999_999}, {"id": ids[6]}, {"id": "x"}, {"id": ids[3]}]
        got = c.call_many("get", asked, window=2)
        assert [g["id"] for g in (got[0], got[2], got[4])] == [ids[0], ids[6], ids[3]]
        assert isinstance(got[1], NotFound) and "999999" in str(got[1])
        assert isinstance(got[3], InputError)
        assert c.call("version")["pid"] == daemon.proc.pid  # the connection is still in step


def test_cli_add_of_many_refuses_them_all_when_one_is_bad(daemon: DaemonProcess) -> None:
    before = daemon.cli("ls", "--json").stdout
    r = daemon.cli("add", URL + "?a", "ftp://127.0.0.1/x", URL + "?b", "--paused")
    assert r.returncode == 2 and "url" in r.stderr.lower(), r.stderr
    assert daemon.cli("ls", "--json").stdout == before
    urls = [f"{URL}?{i}" for i in range(150)]  # more than one window of requests in flight
    r = daemon.cli("add", *urls, "--paused", "--json")
    assert r.returncode == 0, r.stderr
    ids = json.loads(r.stdout)["ids"]
    rows = json.loads(daemon.cli("ls", "--json").stdout)
    assert [(x["id"], x["url"]) for x in rows][-150:] == list(zip(ids, urls))


def test_cli_without_daemon(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "home")
    d.paths.ensure()
    store = Store(d.paths.database)
    store.set_settings({"port": 0})  # the default port may be taken on a shared machine
    store.close()
    r = d.cli("ls")
    assert r.returncode == 1 and "not running" in r.stderr
    r = d.cli("start")
    assert r.returncode == 0, r.stderr
    info = json.loads(d.paths.daemon_file.read_text())
    try:
        assert str(info["pid"]) in r.stdout
        assert d.cli("status").returncode == 0
        assert d.cli("start").returncode == 0  # already running: fine
        assert json.loads(d.paths.daemon_file.read_text())["pid"] == info["pid"]
    finally:
        assert d.cli("stop").returncode == 0
    wait_for(lambda: not _alive(info["pid"]), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until its parent reaps it: it still counts as ended.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"
