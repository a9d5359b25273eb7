"""``daemon.json``: where a running daemon says it listens (docs/PROTOCOL.md, "Finding and
authenticating to the daemon"). The daemon writes it; the CLI, the tray and the native host
read it, all through :func:`read`, and connect only after :func:`read_running`: the file
outlives a daemon killed with SIGKILL, and its port may then belong to anyone.

The instance lock (an ``flock`` the daemon holds on ``paths.lock_file`` for its whole life,
:class:`freight.daemon.instance.InstanceLock`) is what tells a running daemon from a stale
file: the kernel frees it when the process dies, however it dies.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from freight.config import Paths, write_private_json
from freight.errors import DaemonError

#: What ``flock(LOCK_NB)`` fails with when another descriptor holds a conflicting lock.
LOCK_BUSY = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES})


class NoDaemonFile(DaemonError):
    """There is no usable daemon.json: no daemon has said where it listens."""


class StaleDaemonFile(NoDaemonFile):
    """daemon.json names a daemon that no longer runs (its pid is gone, or nobody holds the
    instance lock): what listens on its port, if anything, is not to be trusted."""


def lock_is_held(path: Path) -> bool:
    """Whether some process holds the instance lock on ``path``: a shared, non-blocking
    ``flock`` fails only then. It is released at once (a daemon taking the lock at that
    moment retries, :meth:`InstanceLock.acquire`). A missing file means nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in LOCK_BUSY:
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read(paths: Paths) -> dict[str, Any]:
    """The daemon's record: at least ``pid`` (int) and ``url`` (a loopback ws:// URL).

    Raises :class:`NoDaemonFile` when the file is missing, unreadable or incomplete, and
    :class:`~freight.errors.DaemonError` when its URL is not on loopback: the token must never
    be sent anywhere else.
    """
    path = paths.daemon_file
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoDaemonFile(f"the daemon is not running (no {path})") from None
    except (OSError, ValueError) as exc:
        raise NoDaemonFile(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict):
        raise NoDaemonFile(f"{path} holds no url")
    url, pid = info.get("url"), info.get("pid")
    if not isinstance(url, str):
        raise NoDaemonFile(f"{path} holds no url")
    # The URL first: a file that points elsewhere is refused as such, never taken for "no
    # daemon" (which would start one), whatever else it lacks.
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname not in ("127.0.0.1", "localhost"):
        raise DaemonError(f"{path} names {url!r}, not a loopback ws:// URL")
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise NoDaemonFile(f"{path} holds no pid")
    return info


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but another user's
        return True
    return pid > 0


def read_running(paths: Paths) -> dict[str, Any]:
    """:func:`read`, and the daemon it names still runs: its pid exists and someone holds the
    instance lock. Raises :class:`StaleDaemonFile` otherwise (and what :func:`read` raises).

    Neither test alone is enough: a pid is reused by unrelated processes, and the lock says
    only that some daemon of this FREIGHT_HOME runs. Another user can hold neither the lock
    (the state folder is 0700) nor make a dead daemon's pid reappear on purpose.
    """
    info = read(paths)
    if not _pid_exists(info["pid"]):
        raise StaleDaemonFile(f"the daemon is not running ({paths.daemon_file} is stale:"
                              f" no process {info['pid']})")
    if not lock_is_held(paths.lock_file):
        raise StaleDaemonFile(f"the daemon is not running ({paths.daemon_file} is stale:"
                              " nobody holds the instance lock)")
    return info


def read_live(paths: Paths) -> dict[str, Any] | None:
    """:func:`read_running`, or None when there is no running daemon to talk to."""
    try:
        return read_running(paths)
    except DaemonError:
        return None


def write(paths: Paths, info: dict[str, Any]) -> None:
    """Replace daemon.json atomically: a reader never sees half a file. It is 0600 whatever
    the umask, like every file Freight makes."""
    write_private_json(paths.daemon_file, info)


def remove_if_mine(paths: Paths) -> None:
    """Remove daemon.json when it names this process (a newer daemon's file stays)."""
    try:
        info = read(paths)
    except DaemonError:
        return
    if info.get("pid") == os.getpid():
        try:
            paths.daemon_file.unlink()
        except FileNotFoundError:
            pass
