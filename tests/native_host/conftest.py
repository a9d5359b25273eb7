"""Fixtures for the native host tests; the helpers live in host_support.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from host_support import HostProcess, StandInDaemon


@pytest.fixture
def host_env(freight_home: Path, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FREIGHT_HOME"] = str(freight_home)
    env["HOME"] = str(tmp_path / "home")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "home" / ".config")
    env.pop("DISPLAY", None)
    # The file fallback, never the user's keyring.
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return env


@pytest.fixture
def stand_in(freight_home: Path) -> Iterator[StandInDaemon]:
    daemon = StandInDaemon(freight_home).start()
    yield daemon
    daemon.stop()


@pytest.fixture
def spawn_host(host_env: dict[str, str]) -> Iterator[Any]:
    started: list[HostProcess] = []

    def spawn(cmd: list[str] | None = None, env: dict[str, str] | None = None) -> HostProcess:
        cmd = cmd or [sys.executable, "-m", "freight_host.host", "chrome-extension://test/"]
        host = HostProcess(cmd, env or host_env)
        host.seen = []
        started.append(host)
        return host

    yield spawn
    for host in started:
        host.kill()
