"""freight-host against a real `freight daemon` process: started by the host, restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, make_data
from freight import config
from freight.store import Store


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_daemon(home: Path) -> None:
    """SIGTERM whatever daemon.json names in this FREIGHT_HOME (a daemon this test started)."""
    try:
        pid = json.loads((home / "state" / "daemon.json").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return
    if pid == os.getpid():
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while _pid_alive(pid) and time.monotonic() < deadline:
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)


@pytest.fixture
def daemon_home(freight_home: Path, host_env: dict[str, str]) -> Iterator[Path]:
    # Any free port, so that tests never collide with a real daemon on 6817.
    paths = config.paths_from_env({"FREIGHT_HOME": str(freight_home)}).ensure()
    store = Store(paths.database)
    store.set_settings({"port": 0})
    store.close()
    host_env["FREIGHT_DOWNLOAD_DIR"] = str(freight_home / "downloads")
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        host_env.pop(name, None)
    host_env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    yield freight_home
    _stop_daemon(freight_home)


def test_host_starts_the_daemon_relays_add_and_forwards_events(
        daemon_home: Path, spawn_host: Any, fault_server: FaultServer) -> None:
    assert not (daemon_home / "state" / "daemon.json").exists()
    host = spawn_host()
    hello = host.call("host.hello", timeout=40)
    assert "result" in hello, hello
    info = json.loads((daemon_home / "state" / "daemon.json").read_text())
    assert hello["result"] == {"host": "0.1.0", "daemon": info["url"], "protocol": 1}
    assert info["port"] != config.DEFAULT_PORT and _pid_alive(info["pid"])
    version = host.call("version")["result"]
    assert version["protocol"] == 1 and version["pid"] == info["pid"]

    assert host.call("subscribe", {})["result"]["subscribed"]
    data = make_data(300_000)
    url = fault_server.add("/file.bin", data)
    added = host.call("add", {"url": url, "connections": 2})
    assert isinstance(added["result"]["id"], int), added
    deadline = time.monotonic() + 30
    states = []
    while time.monotonic() < deadline and "completed" not in states:
        msg = host.recv(timeout=max(0.1, deadline - time.monotonic()))
        if msg.get("method") == "download.state":
            states.append(msg["params"]["state"])
        host.seen.append(msg)
    methods = {m.get("method") for m in host.seen}
    assert "download.added" in methods and "completed" in states, host.seen
    got = host.call("get", {"id": added["result"]["id"]})["result"]
    assert Path(got["path"]).read_bytes() == data
    # Errors of the daemon come back unchanged.
    missing = host.call("get", {"id": 9999})
    assert missing["error"]["code"] == -32001, (
        missing, (daemon_home / "logs" / "freight-host.log").read_text())
    host.close_stdin()
    assert host.wait() == 0
    host.assert_stdout_only_frames()
    # The daemon outlives the host: the browser closing the port must not stop downloads.
    assert _pid_alive(info["pid"])


def test_daemon_restart_reconnects_and_keeps_the_subscription(
        daemon_home: Path, spawn_host: Any, host_env: dict[str, str]) -> None:
    host = spawn_host()
    assert "result" in host.call("host.hello", timeout=40)
    assert host.call("subscribe", {"events": ["settings.changed"]})["result"]
    first = json.loads((daemon_home / "state" / "daemon.json").read_text())
    _stop_daemon(daemon_home)
    lost = host.recv(timeout=15)
    assert lost == {"jsonrpc": "2.0", "method": "host.daemon", "params": {"connected": False}}
    subprocess.run([sys.executable, "-m", "freight", "start"], env=host_env, check=True,
                   timeout=40, capture_output=True)
    back = host.recv(timeout=20)
    assert back["method"] == "host.daemon" and back["params"]["connected"] is True
    second = json.loads((daemon_home / "state" / "daemon.json").read_text())
    assert second["pid"] != first["pid"] and back["params"]["url"] == second["url"]
    # The replayed subscription delivers events from the new daemon.
    assert host.call("set_settings", {"settings": {"max_active": 5}})["result"]
    event = host.seen.pop() if host.seen else host.recv(timeout=10)
    assert event["method"] == "settings.changed"
    assert event["params"]["settings"]["max_active"] == 5


def test_a_daemon_that_cannot_start_gives_daemon_unavailable(
        freight_home: Path, spawn_host: Any) -> None:
    # The state folder is a file: the daemon cannot write daemon.json, so it cannot start.
    (freight_home / "state").write_text("not a folder")
    host = spawn_host()
    answer = host.call("add", {"url": "http://127.0.0.1:9/x"}, timeout=60)
    assert answer["error"]["code"] == -32010
    assert answer["error"]["data"]["kind"] == "daemon_unavailable"
    assert "freight start" in answer["error"]["data"]["reason"]
    # A burst of requests does not start the daemon again for each one.
    t0 = time.monotonic()
    assert host.call("version")["error"]["code"] == -32010
    assert time.monotonic() - t0 < 2
    host.close_stdin()
    assert host.wait() == 0
    host.assert_stdout_only_frames()


def test_after_a_token_rotation_a_new_host_connects_without_a_daemon_restart(
        daemon_home: Path, spawn_host: Any, host_env: dict[str, str]) -> None:
    first = spawn_host()
    assert "result" in first.call("host.hello", timeout=40)
    pid = json.loads((daemon_home / "state" / "daemon.json").read_text())["pid"]
    rotated = subprocess.run([sys.executable, "-m", "freight", "token", "--rotate"],
                             env=host_env, capture_output=True, text=True, timeout=30)
    assert rotated.returncode == 0, rotated.stderr
    # The open connection stays; a new one proves the new token to the same daemon, which
    # rereads it when the client's key id differs.
    assert first.call("version")["result"]["pid"] == pid
    second = spawn_host()
    version = second.call("version", timeout=20)
    assert version.get("result", {}).get("pid") == pid, (
        version, (daemon_home / "logs" / "freight-host.log").read_text())
    listed = subprocess.run([sys.executable, "-m", "freight", "ls", "--json"], env=host_env,
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert json.loads((daemon_home / "state" / "daemon.json").read_text())["pid"] == pid


def test_a_taken_port_reaches_the_extension_as_its_cause_and_fix(
        daemon_home: Path, spawn_host: Any, host_env: dict[str, str],
        port_holder: tuple[subprocess.Popen[str], int]) -> None:
    # A program that is not Freight holds the port the settings name.
    holder, taken = port_holder
    paths = config.paths_from_env({"FREIGHT_HOME": str(daemon_home)})
    store = Store(paths.database)
    store.set_settings({"port": taken})
    store.close()
    host = spawn_host()
    error = host.call("host.hello", {}, timeout=60)["error"]
    assert error["code"] == -32010
    data = error["data"]
    assert data["kind"] == "daemon_unavailable" and data["cause"] == "port_taken"
    assert data["port"] == taken
    assert f"port {taken} on 127.0.0.1 is held by" in data["reason"]
    assert f"(pid {holder.pid})" in data["reason"], data
    assert data["fix"].startswith("freight start --port "), data
    assert data["reason"] in error["message"]
    # The fix, run as given; then the same host connects, on the port it recorded.
    fixed = subprocess.run([sys.executable, "-m", "freight", *data["fix"].split()[1:]],
                           env=host_env, capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0, fixed.stderr
    deadline = time.monotonic() + 30
    while True:
        answer = host.call("host.hello", {}, timeout=60)
        if "result" in answer or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the host remembers a failed start for a moment
    assert answer["result"]["daemon"].endswith(f":{data['fix'].split()[-1]}/"), answer
    host.close_stdin()
    assert host.wait() == 0
    host.assert_stdout_only_frames()
