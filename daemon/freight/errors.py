"""Freight's one exception tree.

Every error that Freight raises on purpose derives from :class:`FreightError`. Foreign errors
(httpx, OSError, sqlite3) are mapped into this tree at the boundary where they occur, so that
callers never catch a third-party type.

The tree separates *we were asked something wrong* from *the peer did something wrong*,
as h11 does with LocalProtocolError and RemoteProtocolError::

    FreightError
    ├── InputError              bad input from the user, the CLI or the extension (exit 2,
    │   │                       JSON-RPC -32602); nothing was changed
    │   ├── NotFound            no such download
    │   ├── IllegalTransition   the download's state does not allow the request
    │   └── RefreshRefused      a fresh link from another site, or for another file
    ├── RemoteError             the server (or the network) did something we cannot use
    │   ├── TransientError      worth retrying: dropped connection, stall, 5xx, 429
    │   │   ├── StalledError    no bytes for longer than the stall timeout
    │   │   └── ThrottledError  429/503, or connection refused: lower the connection cap
    │   ├── HTTPStatusError     a final error status (404, 401, ...)
    │   ├── LinkExpiredError    403/410 on resume: the link needs refreshing
    │   ├── RangeError          a 206 whose Content-Range is not the range asked for
    │   ├── FileChangedError    validators or size differ: the file changed on the server
    │   └── ProtocolViolation   more bytes than declared, absurd sizes, bad redirects
    ├── LocalIOError            the local disk refused (permission, missing folder)
    │   ├── DiskFullError       ENOSPC: pause, keep state, resume when there is space
    │   └── BusyError           another Freight process is writing this download's .part
    ├── ChecksumError           the finished file does not match the expected digest
    ├── StoreError              the SQLite database is damaged, foreign or too new
    ├── DaemonError             talking to the daemon failed (not running, refused, timeout)
    │   ├── AuthError           the daemon refused our token
    │   └── ImpostorError       what listens where daemon.json says cannot prove it holds
    │                           the token: not this user's daemon; nothing was sent to it
    ├── ShuttingDown            the daemon is stopping and takes no new work
    └── Stopped                 the transfer was paused, cancelled or shut down on request
"""

from __future__ import annotations

from typing import Any


class FreightError(Exception):
    """Base of every error Freight raises on purpose."""

    #: Short machine-readable name used in the API and in the database (``error_kind``).
    kind = "error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return self.message


class InputError(FreightError):
    kind = "invalid_input"


class NotFound(InputError):
    kind = "not_found"


class IllegalTransition(InputError):
    kind = "illegal_transition"


class RefreshRefused(InputError):
    """A fresh link for a waiting download was refused (another site, another size, another
    validator, or it does not answer); nothing was changed. ``data["why"]`` says which."""

    kind = "refresh_refused"


class RemoteError(FreightError):
    kind = "remote"


class TransientError(RemoteError):
    """Worth retrying after a backoff. ``retry_after`` is the server's wish in seconds."""

    kind = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None, **data: Any) -> None:
        super().__init__(message, **data)
        self.retry_after = retry_after


class StalledError(TransientError):
    kind = "stalled"


class ThrottledError(TransientError):
    kind = "throttled"


class HTTPStatusError(RemoteError):
    kind = "http_status"

    def __init__(self, message: str, *, status: int, **data: Any) -> None:
        super().__init__(message, status=status, **data)
        self.status = status


class LinkExpiredError(RemoteError):
    kind = "needs_refresh"


class RangeError(RemoteError):
    kind = "bad_range"


class FileChangedError(RemoteError):
    kind = "file_changed"


class ProtocolViolation(RemoteError):
    kind = "protocol_violation"


class LocalIOError(FreightError):
    kind = "local_io"


class DiskFullError(LocalIOError):
    kind = "disk_full"


class BusyError(LocalIOError):
    kind = "busy"


class ChecksumError(FreightError):
    kind = "checksum_mismatch"


class StoreError(FreightError):
    kind = "store"


class DaemonError(FreightError):
    kind = "daemon"


class AuthError(DaemonError):
    kind = "auth"


class ImpostorError(DaemonError):
    """The peer at the daemon's address failed the handshake's proof (docs/SECURITY.md §2):
    another program holds the port. Not an AuthError: restarting the daemon to reread the
    token would not help."""

    kind = "impostor"


class ShuttingDown(FreightError):
    """The daemon is stopping and takes no new work (JSON-RPC -32003)."""

    kind = "shutting_down"


class Stopped(FreightError):
    """Raised inside a transfer when it was asked to stop; not an error to report."""

    kind = "stopped"
