"""One daemon per FREIGHT_HOME: an exclusive ``flock`` held for the daemon's whole life.
Clients test it (:func:`freight.daemonfile.lock_is_held`) before trusting daemon.json."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from freight.daemonfile import LOCK_BUSY

#: How long :meth:`InstanceLock.acquire` keeps trying while the lock is busy: a client's
#: liveness probe holds a shared lock for microseconds, and must never make a start fail.
ACQUIRE_PATIENCE = 0.5


class InstanceLock:
    """``flock`` on ``paths.lock_file``: held for the daemon's life, freed by the kernel even
    after SIGKILL, so a stale lock never blocks a restart. The file holds the holder's pid,
    for people; nothing trusts it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, patience: float = ACQUIRE_PATIENCE) -> bool:
        """Take the lock; False when another process still holds it after ``patience``
        seconds (a running daemon holds it for ever; a client's probe only for an instant)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in LOCK_BUSY:
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.01)
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
