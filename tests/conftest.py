"""Shared fixtures: the fault-injecting HTTP server and a throwaway FREIGHT_HOME.

``tests/`` has no ``__init__.py``, so pytest puts this folder on ``sys.path`` and test modules
anywhere below it can ``from faultserver import FaultServer, make_data``.
"""

from __future__ import annotations

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
