"""A daemon that cannot start says why and how to fix it, and a taken port has a way out in one
step: real `freight start` / `freight doctor` processes, a real program holding the port."""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from freight import config
from freight.store import Store


@pytest.fixture
def env(freight_home: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    e = dict(os.environ)
    e.update(FREIGHT_HOME=str(freight_home), HOME=str(tmp_path / "home"),
             PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
             FREIGHT_DOWNLOAD_DIR=str(tmp_path / "downloads"))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "http_proxy", "HTTP_PROXY", "all_proxy"):
        e.pop(name, None)
    (tmp_path / "home").mkdir()
    yield e
    freight(e, "stop")


def freight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freight", *args], env=env,
                          capture_output=True, text=True, timeout=90)


def set_port(env: dict[str, str], port: int) -> config.Paths:
    paths = config.paths_from_env({"FREIGHT_HOME": env["FREIGHT_HOME"]}).ensure()
    store = Store(paths.database)
    store.set_settings({"port": port})
    store.close()
    return paths


def saved_port(paths: config.Paths) -> int:
    store = Store(paths.database)
    try:
        return int(store.settings()["port"])
    finally:
        store.close()


def running_port(paths: config.Paths) -> int:
    port = urlsplit(json.loads(paths.daemon_file.read_text())["url"]).port
    assert port is not None
    return port


def doctor_daemon(env: dict[str, str]) -> dict[str, Any]:
    report = json.loads(freight(env, "doctor", "--json").stdout)
    return next(c for c in report["checks"] if c["name"] == "daemon")


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_a_taken_port_is_named_and_the_fix_moves_freight_for_good(
        env: dict[str, str], port_holder: tuple[subprocess.Popen[str], int]) -> None:
    proc, taken = port_holder
    paths = set_port(env, taken)

    result = freight(env, "start")
    assert result.returncode == 1
    # The cause, in the daemon's own words, and the one command that fixes it: not "see the log".
    assert f"port {taken} on 127.0.0.1 is held by {comm(proc.pid)} (pid {proc.pid})" \
        in result.stderr, result.stderr
    fix_line = next(line for line in result.stderr.splitlines() if "fix:" in line)
    start_fix = fix_line.partition("fix:")[2].strip()
    assert start_fix.startswith("freight start --port "), result.stderr
    assert "see " not in result.stderr
    record = paths.start_error_file
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert json.loads(record.read_text())["kind"] == "port_taken"
    assert not paths.daemon_file.exists()

    # doctor, with the daemon down: who holds the port, and a fix with a port it checked free.
    check = doctor_daemon(env)
    assert check["status"] == "fail"
    assert f"{comm(proc.pid)} (pid {proc.pid})" in check["detail"], check
    doctor_fix = shlex.split(check["fix"])
    assert doctor_fix[:3] == ["freight", "start", "--port"], check
    new_port = int(doctor_fix[3])
    assert new_port not in (0, taken)

    # The fix works as printed, and it holds: the next plain start uses the same port.
    moved = freight(env, *doctor_fix[1:])
    assert moved.returncode == 0, moved.stderr
    assert running_port(paths) == new_port
    assert not record.exists()  # a daemon started: the old failure is gone
    assert freight(env, "stop").returncode == 0
    assert saved_port(paths) == new_port
    again = freight(env, "start")
    assert again.returncode == 0, again.stderr
    assert running_port(paths) == new_port
    assert doctor_daemon(env)["status"] == "ok"


def test_port_zero_means_any_free_port_every_time(
        env: dict[str, str], port_holder: tuple[subprocess.Popen[str], int]) -> None:
    _, taken = port_holder
    paths = set_port(env, taken)
    assert freight(env, "start", "--port", "0").returncode == 0
    first = running_port(paths)
    assert first != taken
    assert freight(env, "stop").returncode == 0
    assert saved_port(paths) == 0
    assert freight(env, "start").returncode == 0  # clients find the port in daemon.json
    assert freight(env, "status").returncode == 0


def test_a_bad_port_is_a_usage_error_that_changes_nothing(env: dict[str, str]) -> None:
    paths = set_port(env, 0)
    for bad in ("70000", "-1"):
        result = freight(env, "start", "--port", bad)
        assert result.returncode == 2 and "between 0 and 65535" in result.stderr
    assert not paths.daemon_file.exists()
    assert saved_port(paths) == 0


def test_start_refuses_to_move_a_running_daemon_silently(env: dict[str, str]) -> None:
    paths = set_port(env, 0)
    assert freight(env, "start").returncode == 0
    at = running_port(paths)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        other = probe.getsockname()[1]
    result = freight(env, "start", "--port", str(other))
    assert result.returncode == 1
    assert f"freight stop && freight start --port {other}" in result.stderr
    assert running_port(paths) == at and saved_port(paths) == 0


def test_a_damaged_database_is_the_cause_and_its_fix_works(env: dict[str, str]) -> None:
    paths = set_port(env, 0)
    paths.database.write_bytes(b"not a database " * 100)
    for name in ("freight.db-wal", "freight.db-shm"):
        (paths.data_dir / name).unlink(missing_ok=True)
    result = freight(env, "start")
    assert result.returncode == 1
    assert "damaged or not a database" in result.stderr, result.stderr
    fix = result.stderr.partition("fix:")[2].strip()
    move, _, then = fix.partition(" && ")
    assert shlex.split(move)[:2] == ["mv", str(paths.database)] and then == "freight start", fix
    # The fix as printed, through a shell (it is a shell command line); the fresh database's
    # port is the default, which may be anyone's on this machine: any free port instead.
    assert subprocess.run(move, shell=True, timeout=30).returncode == 0
    assert not paths.database.exists()
    done = freight(env, "start", "--port", "0")
    assert done.returncode == 0, done.stderr
    assert paths.daemon_file.exists() and not paths.start_error_file.exists()


def test_a_stale_record_is_not_taken_for_the_cause_of_a_later_failure(
        env: dict[str, str], port_holder: tuple[subprocess.Popen[str], int]) -> None:
    proc, taken = port_holder
    paths = set_port(env, taken)
    paths.start_error_file.write_text(json.dumps(
        {"kind": "database", "message": "an old failure", "fix": "nothing", "at": 1}))
    result = freight(env, "start")
    assert result.returncode == 1
    assert "an old failure" not in result.stderr and f"pid {proc.pid}" in result.stderr
