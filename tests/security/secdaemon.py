"""A real ``freight daemon`` process in a throwaway FREIGHT_HOME, for the security tests."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from freight.client import authorization
from websockets.sync.client import ClientConnection, connect

FREIGHT = str(Path(sys.executable).with_name("freight"))


def env_for(home: Path) -> dict[str, str]:
    env = dict(os.environ, FREIGHT_HOME=str(home), HOME=str(home),
               XDG_RUNTIME_DIR=str(home / "run"), NO_PROXY="*")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS",
                 "PYTHON_KEYRING_BACKEND"):
        env.pop(name, None)
    return env


class DaemonProcess:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 20) -> DaemonProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "run").mkdir(mode=0o700, exist_ok=True)
        self.log = open(self.home / "daemon.out", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [FREIGHT, "daemon", "--no-tray", "--port", "0"], env=env_for(self.home),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        state = self.home / "state" / "daemon.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.proc.returncode}: "
                                   f"{self.output()}")
            try:
                info = json.loads(state.read_text())
                if info.get("pid") == self.proc.pid:
                    self.info = info
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the daemon did not start: {self.output()}")

    def output(self) -> str:
        try:
            return (self.home / "daemon.out").read_text(errors="replace")
        except OSError:
            return ""

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def token(self) -> str:
        return (self.home / "secrets" / "api-token").read_text().strip()

    def authorization(self) -> str:
        """A fresh ``Authorization`` value for one upgrade, by the real handshake."""
        return authorization(self.url, self.token(), timeout=5)

    def connect(self, **kwargs: Any) -> ClientConnection:
        headers = kwargs.pop("additional_headers", None)
        if headers is None:
            headers = {"Authorization": self.authorization()}
        return connect(self.url, additional_headers=headers, proxy=None, open_timeout=5,
                       max_size=None, **kwargs)

    def call(self, ws: ClientConnection, method: str, params: dict[str, Any] | None = None,
             id_: int = 1) -> dict[str, Any]:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method,
                            "params": params or {}}))
        while True:
            reply = json.loads(ws.recv(timeout=10))
            if reply.get("id") == id_:
                return dict(reply)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


def database_dump(path: Path) -> list[str]:
    """The database's content as SQL (read-only): equal dumps mean nothing changed."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(db.iterdump())
    finally:
        db.close()
