"""One daemon per FREIGHT_HOME: an exclusive ``flock`` held for the daemon's whole life."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


class InstanceLock:
    """``flock`` on ``paths.lock_file``: held for the daemon's life, freed by the kernel even
    after SIGKILL, so a stale lock never blocks a restart. The file holds the holder's pid,
    for people; nothing trusts it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
