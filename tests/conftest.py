"""Shared fixtures: the fault-injecting HTTP server and a throwaway FREIGHT_HOME.

``tests/`` has no ``__init__.py``, so pytest puts this folder on ``sys.path`` and test modules
anywhere below it can ``from faultserver import FaultServer, make_data``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import FaultServer
from hypothesis import HealthCheck, settings

# How long one example takes depends on how loaded the machine is (CI runs many real processes
# at once), so neither a per-example deadline nor the too-slow health check says anything about
# Freight: a slow example is still checked in full. Tests may tighten this with @settings.
settings.register_profile(
    "freight", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("freight")


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1 (port 0), stopped after the test."""
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def other_fault_server() -> Iterator[FaultServer]:
    """A second, independent server on another port: the target of cross-host redirects."""
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def freight_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty FREIGHT_HOME for the test, so nothing touches the real home."""
    home = tmp_path / "freight-home"
    home.mkdir()
    monkeypatch.setenv("FREIGHT_HOME", str(home))
    return home


#: A plain listener in its own process: a program that is not Freight holding a port.
_PORT_HOLDER = """
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(600)
"""


@pytest.fixture
def port_holder() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Another program listening on 127.0.0.1: ``(its process, the port it holds)``."""
    proc = subprocess.Popen([sys.executable, "-c", _PORT_HOLDER], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    try:
        yield proc, int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
