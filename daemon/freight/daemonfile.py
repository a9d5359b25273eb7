"""``daemon.json``: where a running daemon says it listens (docs/PROTOCOL.md, "Finding and
authenticating to the daemon"). The daemon writes it; the CLI, the tray and the native host
read it, all through :func:`read`.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from freight.config import Paths, private_file
from freight.errors import DaemonError


class NoDaemonFile(DaemonError):
    """There is no usable daemon.json: no daemon has said where it listens."""


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


def read_live(paths: Paths) -> dict[str, Any] | None:
    """:func:`read`, but None unless the process it names still exists."""
    try:
        info = read(paths)
    except DaemonError:
        return None
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


def write(paths: Paths, info: dict[str, Any]) -> None:
    """Replace daemon.json atomically: a reader never sees half a file. It is 0600 whatever
    the umask, like every file Freight makes."""
    tmp = paths.daemon_file.with_name(f".daemon.{os.getpid()}.tmp")
    fd = private_file(tmp, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(info, out)
    os.replace(tmp, paths.daemon_file)


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
