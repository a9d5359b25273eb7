"""A daemon that cannot start says why, where its clients look (:mod:`freight.starterror`),
with the one command that fixes it; a daemon that starts removes the record.

Each failure is named by what the user can do: a port another program holds (which one, and a
port that is free, :mod:`freight.ports`), a port below 1024 that needs privileges, a database
that is locked, damaged or from a newer Freight, a folder that cannot be written.
"""

from __future__ import annotations

import errno
import logging
import shlex
import sys

from freight import config, ports, starterror
from freight.errors import StoreError

log = logging.getLogger("freight.daemon")


def _start_with_port(port: int) -> str:
    return f"freight start --port {port}"


def listen_failed(paths: config.Paths, port: int, exc: OSError) -> None:
    """The server could not listen on 127.0.0.1:``port``."""
    if exc.errno == errno.EADDRINUSE:
        free = ports.free_port_near(port)
        kind = "port_taken"
        message = f"port {port} on 127.0.0.1 is held by {ports.who_holds(port)}"
        fix = _start_with_port(free)
    elif exc.errno in (errno.EACCES, errno.EPERM):
        # Below 1024 only root may listen (on Unix): offer the default port, or one near it.
        free = ports.free_port_near(config.DEFAULT_PORT - 1)
        kind = "port_refused"
        message = f"port {port} on 127.0.0.1 needs privileges this user lacks ({exc.strerror})"
        fix = _start_with_port(free)
    else:
        kind = "listen"
        message = f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"
        fix = _start_with_port(0)
    _record(paths, kind, message, fix, port)


def store_failed(paths: config.Paths, exc: StoreError) -> None:
    """The database could not be opened (locked, damaged, foreign, newer)."""
    db = shlex.quote(str(paths.database))
    text = str(exc)
    if "locked" in text:
        fix = f"stop the program that holds the database (fuser -v {db}), then: freight start"
    elif "damaged" in text or "not a database" in text:
        fix = f"mv {db} {shlex.quote(str(paths.database) + '.damaged')} && freight start"
    elif "newer Freight" in text:
        fix = "upgrade Freight (pip install -U freight), then: freight start"
    else:
        fix = "freight doctor"
    _record(paths, "database", text, fix)


def folder_failed(paths: config.Paths, exc: OSError) -> None:
    """One of Freight's folders cannot be made or written."""
    where = exc.filename or paths.state_dir
    message = f"cannot prepare Freight's folder {where}: {exc.strerror or exc}"
    _record(paths, "folder", message, f"chmod u+rwx {shlex.quote(str(where))} && freight start")


def other_failed(paths: config.Paths, exc: BaseException) -> None:
    _record(paths, "failed", f"the daemon failed at start: {exc}",
            f"freight doctor (the log: {paths.log_file})")


def _record(paths: config.Paths, kind: str, message: str, fix: str,
            port: int | None = None) -> None:
    log.error("cannot start: %s; fix: %s", message, fix)
    # The terminal of `freight daemon` run by hand; `freight start` sends it to its own log.
    print(f"freight: cannot start: {message}\n  fix: {fix}", file=sys.stderr)
    starterror.record(paths, kind, message, fix, port)


def started(paths: config.Paths) -> None:
    """A daemon listens: the last failure is history."""
    starterror.clear(paths)
