"""``start-error.json``: why the last daemon could not start, and the one command that fixes it.

A daemon that fails at start (its port taken, its database locked or damaged, a folder it
cannot write) has nobody to tell but its log. The clients that started it are the ones a user
looks at: `freight start` prints the cause, and the native host gives it to the extension's
popup (error -32010's ``data.reason`` and ``data.fix``, docs/PROTOCOL.md). So the daemon
records it here, in the state folder next to ``daemon.json``, 0600 like every file Freight
makes, and removes it once a daemon has started (:func:`clear`).

    {"at": 1764590000.0, "kind": "port_taken", "port": 6817,
     "message": "port 6817 on 127.0.0.1 is held by nginx (pid 123)",
     "fix": "freight start --port 6818"}
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from freight.config import Paths, write_private_json

#: A record larger than this is not one the daemon wrote.
MAX_BYTES = 16 * 1024
#: What ``kind`` may be: the port is taken or refused, the database or a folder failed, or
#: something else went wrong.
KINDS = frozenset({"port_taken", "port_refused", "listen", "database", "folder", "failed"})


@dataclass(frozen=True)
class StartError:
    kind: str
    message: str
    fix: str
    port: int | None = None
    at: float = 0.0

    def data(self) -> dict[str, Any]:
        """The fields a client passes on (the host's -32010 ``data``)."""
        out: dict[str, Any] = {"reason": self.message, "fix": self.fix, "cause": self.kind}
        if self.port is not None:
            out["port"] = self.port
        return out


def record(paths: Paths, kind: str, message: str, fix: str, port: int | None = None) -> None:
    """Write the record atomically (a reader never sees half of it). Best effort: a state
    folder that cannot be written is itself the failure, and the log says it."""
    entry = StartError(kind, message, fix, port, time.time())
    with contextlib.suppress(OSError):
        write_private_json(paths.start_error_file, asdict(entry))


def clear(paths: Paths) -> None:
    with contextlib.suppress(OSError):
        paths.start_error_file.unlink()


def read(paths: Paths) -> StartError | None:
    """The last start's failure, or None when there is none (or the file is not one of ours:
    never trusted beyond its types and size)."""
    try:
        with open(paths.start_error_file, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        data = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    kind, message, fix = data.get("kind"), data.get("message"), data.get("fix")
    port, at = data.get("port"), data.get("at")
    if kind not in KINDS or not isinstance(message, str) or not isinstance(fix, str):
        return None
    if port is not None and (type(port) is not int or not 0 <= port <= 65535):
        port = None
    return StartError(kind, message, fix, port, float(at) if isinstance(at, int | float) else 0.0)
