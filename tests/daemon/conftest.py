"""Fixtures of the daemon tests: a real daemon process (see daemonproc.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemonproc import DaemonProcess


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "home").start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
