"""Running the real `freight get` process against the fault server.

``fr`` is a :class:`FreightRun` bound to the test's FREIGHT_HOME (the shared ``freight_home``
fixture) and a download folder inside tmp_path. Its engine settings are tuned for speed
(short timeouts and backoffs, small split size, frequent checkpoints) through the database's
settings table, exactly as a user would set them.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from freight.models import Download
from freight.store import Store

FAST_SETTINGS: dict[str, Any] = {
    "min_split_size": 64 * 1024,
    "checkpoint_interval": 0.1,
    "stall_timeout": 2.0,
    "connect_timeout": 2.0,
    "retry_base": 0.05,
    "retry_max": 2.0,
    "read_size": 64 * 1024,
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def record(self) -> dict[str, Any]:
        """The last --json line."""
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no JSON in stdout: {self.stdout!r} / stderr: {self.stderr!r}"
        return json.loads(lines[-1])

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class FreightRun:
    def __init__(self, home: Path, dl: Path, user_home: Path) -> None:
        self.home = home
        self.dl = dl
        self.user_home = user_home
        self.db = home / "freight.db"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FREIGHT_HOME=str(self.home),
            HOME=str(self.user_home),
            XDG_CONFIG_HOME=str(self.user_home / ".config"),
            XDG_DATA_HOME=str(self.user_home / ".local/share"),
            COLUMNS="120",
            PYTHONUNBUFFERED="1",
            # A backend that always fails: secrets go to files under FREIGHT_HOME, never to
            # the keyring of whoever runs the tests.
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        )
        # Never reach the real session's keyring or proxies from a test.
        for name in ("DBUS_SESSION_BUS_ADDRESS", "http_proxy", "https_proxy", "HTTP_PROXY",
                     "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        return env

    def settings(self, **changes: Any) -> None:
        store = Store(self.db)
        try:
            store.set_settings(changes)
        finally:
            store.close()

    def argv(self, *args: str, json_out: bool = True) -> list[str]:
        argv = [sys.executable, "-m", "freight", "get", *args]
        if "-d" not in args:
            argv += ["-d", str(self.dl)]
        if json_out:
            argv.append("--json")
        return argv

    def run(self, *args: str, timeout: float = 60, json_out: bool = True) -> Result:
        started = time.monotonic()
        proc = subprocess.run(
            self.argv(*args, json_out=json_out), env=self.env(), capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, stdin=subprocess.DEVNULL,
        )

    def download(self, download_id: int = 1) -> Download:
        store = Store(self.db)
        try:
            return store.get(download_id)
        finally:
            store.close()

    def wait_done(
        self, proc: subprocess.Popen[str], at_least: int, timeout: float = 20,
        download_id: int = 1,
    ) -> int:
        """Wait until the database records ``at_least`` bytes done; return the amount."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"freight exited early ({proc.returncode}): {out} {err}")
            if self.db.exists():
                try:
                    done = self.download(download_id).done
                except Exception:  # not created yet
                    done = 0
                if done >= at_least:
                    return done
            time.sleep(0.02)
        raise AssertionError(f"no progress to {at_least} bytes within {timeout}s")

    def finish(self, proc: subprocess.Popen[str], sig: int | None, timeout: float = 20) -> Result:
        started = time.monotonic()
        if sig is not None:
            proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"freight did not stop: {out} {err}") from None
        return Result(proc.returncode, out, err, time.monotonic() - started)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.dl.iterdir()) if self.dl.exists() else []


@pytest.fixture
def fr(freight_home: Path, tmp_path: Path) -> FreightRun:
    user_home = tmp_path / "user"
    user_home.mkdir()
    run = FreightRun(freight_home, tmp_path / "dl", user_home)
    run.settings(**FAST_SETTINGS)
    return run


@pytest.fixture
def kill_after():
    """Processes a test started are killed when it ends, whatever happened."""
    procs: list[subprocess.Popen[str]] = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite store in the test's folder."""
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()
