"""Plain data: the download record, its segments, and the state machine.

Everything that decides whether a download may move from one state to another lives in
``TRANSITIONS`` below; nothing else in Freight changes a state without asking
:func:`check_transition`. An illegal move raises, it never passes silently.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any

from freight.errors import IllegalTransition


class DownloadState(enum.StrEnum):
    QUEUED = "queued"  # waiting for a free slot
    ACTIVE = "active"  # a transfer is running (or will be resumed at daemon start)
    PAUSED = "paused"  # stopped by the user, or by a full disk; resumable
    COMPLETED = "completed"  # the file is under its final name
    FAILED = "failed"  # stopped by an error; partial data kept for a retry
    NEEDS_REFRESH = "needs_refresh"  # the link expired (403/410 on resume); partial data kept
    REMOVED = "removed"  # cancelled: partial data deleted, the record kept as history


S = DownloadState

#: The whole state machine. A state absent from a row's set cannot be reached from that state.
TRANSITIONS: dict[DownloadState, frozenset[DownloadState]] = {
    S.QUEUED: frozenset({S.ACTIVE, S.PAUSED, S.REMOVED}),
    S.ACTIVE: frozenset(
        {S.QUEUED, S.PAUSED, S.COMPLETED, S.FAILED, S.NEEDS_REFRESH, S.REMOVED}
    ),
    S.PAUSED: frozenset({S.QUEUED, S.ACTIVE, S.REMOVED}),
    S.FAILED: frozenset({S.QUEUED, S.ACTIVE, S.PAUSED, S.REMOVED}),
    S.NEEDS_REFRESH: frozenset({S.QUEUED, S.ACTIVE, S.PAUSED, S.REMOVED}),
    S.COMPLETED: frozenset({S.REMOVED}),
    # Only a restart (the API's ``restart``, `freight restart`) takes a cancelled download
    # back to the queue, from zero: cancel deleted its partial data, so nothing resumes, and
    # ``resume`` keeps refusing it (daemon/actions.py).
    S.REMOVED: frozenset({S.QUEUED}),
}

#: States in which no transfer runs and none will start by itself.
FINAL_STATES = frozenset({S.COMPLETED, S.REMOVED})
#: States that `freight wait` and the CLI treat as "stopped with a problem".
TROUBLE_STATES = frozenset({S.FAILED, S.NEEDS_REFRESH})


def can_transition(old: DownloadState, new: DownloadState) -> bool:
    return new in TRANSITIONS[old]


def check_transition(old: DownloadState, new: DownloadState) -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is in the table."""
    if not can_transition(old, new):
        raise IllegalTransition(
            f"cannot go from {old.value} to {new.value}", state=old.value, wanted=new.value
        )


@dataclass
class Segment:
    """A byte range ``[start, end)`` of the file of which ``[start, pos)`` is on disk."""

    start: int
    end: int
    pos: int

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    @property
    def done(self) -> int:
        return self.pos - self.start


@dataclass
class Download:
    """One download as stored. ``size`` is None while unknown; ``name`` is the final file name."""

    id: int
    url: str
    dir: str
    state: DownloadState = S.QUEUED
    name: str | None = None
    requested_name: str | None = None
    final_url: str | None = None
    referrer: str | None = None
    mime: str | None = None
    size: int | None = None
    done: int = 0
    resumable: bool = False
    etag: str | None = None
    last_modified: str | None = None
    connections: int | None = None  # None: adaptive
    limit: int | None = None  # bytes per second, None: unlimited
    checksum: str | None = None  # "sha256:HEX"
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request
    error: str | None = None
    error_kind: str | None = None
    position: int = 0  # queue order; lower runs first
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    insecure: bool = False  # TLS verification off, only when asked for this download

    @property
    def path(self) -> str | None:
        return os.path.join(self.dir, self.name) if self.name else None

    @property
    def part_path(self) -> str | None:
        path = self.path
        return path + ".part" if path else None

    def public(self) -> dict[str, Any]:
        """The download as the API and `--json` show it: never any header value."""
        return {
            "id": self.id,
            "url": self.url,
            "final_url": self.final_url,
            "referrer": self.referrer,
            "name": self.name,
            "dir": self.dir,
            "path": self.path,
            "state": self.state.value,
            "size": self.size,
            "done": self.done,
            "resumable": self.resumable,
            "connections": self.connections,
            "limit": self.limit,
            "checksum": self.checksum,
            "error": self.error,
            "error_kind": self.error_kind,
            "position": self.position,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


#: Exit codes of `freight get` and `freight wait`, documented in README and kept stable.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NEEDS_REFRESH = 3
EXIT_INTERRUPTED = 130


def exit_code(state: DownloadState) -> int:
    """The exit code that reports a download which stopped in ``state``."""
    if state == S.COMPLETED:
        return EXIT_OK
    if state == S.NEEDS_REFRESH:
        return EXIT_NEEDS_REFRESH
    if state in (S.PAUSED, S.ACTIVE, S.QUEUED):
        return EXIT_INTERRUPTED
    return EXIT_FAILED
