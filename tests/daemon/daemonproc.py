"""Helpers: a real daemon process: ``python -m freight daemon --no-tray --port 0``.

Secrets go to 0600 files (the keyring's ``fail`` backend is forced, so the tests never touch
a user's keyring); FREIGHT_HOME and HOME are throwaway folders.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from freight import config, secrets
from freight.client import Client


def daemon_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FREIGHT_HOME=str(home),
        HOME=str(home / "user"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        FREIGHT_DOWNLOAD_DIR=str(home / "downloads"),
    )
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    (home / "user").mkdir(parents=True, exist_ok=True)
    return env


class DaemonProcess:
    def __init__(
        self, home: Path, extra_args: tuple[str, ...] = (),
        launcher: tuple[str, ...] = ("-m", "freight"),
    ) -> None:
        """``launcher``: what runs ``freight`` after the interpreter (``-c CODE`` for a daemon
        changed in place, as an older one)."""
        self.home = home
        self.launcher = launcher
        self.env = daemon_env(home)
        self.paths = config.paths_from_env(self.env)
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    # -- life cycle -----------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> DaemonProcess:
        self.paths.ensure()
        self.stderr = open(self.home / "daemon.stderr", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *self.launcher, "daemon", "--no-tray", "--port", "0",
             *self.extra_args],
            env=self.env, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}: {self.log()}")
            try:
                info = json.loads(self.paths.daemon_file.read_text())
                if info["pid"] == self.proc.pid:
                    self.info = info
                    return self
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"daemon did not start: {self.log()}")

    def log(self) -> str:
        try:
            return (self.home / "daemon.stderr").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.stderr.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.stderr.close()

    # -- talking to it ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def token(self) -> str:
        return (self.paths.secrets_dir / secrets.TOKEN_USER).read_text().strip()

    def client(self) -> Client:
        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            secrets.forget_cache()
            return Client.connect(self.paths)
        finally:
            os.environ.clear()
            os.environ.update(old)
            secrets.forget_cache()

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "freight", *args], env=self.env, capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
