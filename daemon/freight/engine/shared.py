"""What the threads of one transfer share: counters, the stop signal, the first fatal error.

The fields ``done``, ``alive``, ``failures``, ``had_data``, ``fatal``, ``size`` and the speed
meter are read and written under ``lock`` (``fatal`` and ``size`` may be read without it: a
stale read only delays a reaction by one chunk). The planner of the running attempt is
touched under the same lock. No lock is taken here per chunk beyond what the planner's claim
and commit already need.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from freight.engine import files
from freight.engine.limits import RateLimiter
from freight.engine.speed import SpeedMeter
from freight.errors import BusyError, FreightError, Stopped

if TYPE_CHECKING:
    from freight.config import EngineSettings
    from freight.engine.files import PartFile
    from freight.engine.http.reply import Reply
    from freight.engine.http.source import RangeSource
    from freight.engine.http.validate import Validators
    from freight.models import Download, Segment
    from freight.store import Store


@dataclass(frozen=True)
class Attempt:
    """What one attempt at the file works with, whichever mode runs it (segmented.py,
    single.py): the download, its settings, where the bytes come from and where they go."""

    download_id: int
    settings: EngineSettings
    store: Store
    source: RangeSource
    part: PartFile
    url: str
    validators: Validators
    headers: dict[str, str]


class Shared:
    __slots__ = (
        "lock", "stop", "wake", "done", "alive", "failures", "had_data", "fatal", "size",
        "speed", "limiter", "global_limiter",
    )

    def __init__(
        self,
        limiter: RateLimiter,
        global_limiter: RateLimiter,
        *,
        done: int,
        size: int | None,
    ) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.wake = threading.Event()  # set by a worker that ends, and by a stop
        self.done = done  # bytes of the file held (written)
        self.alive = 0  # connections running
        self.failures = 0  # failures in a row without a byte of progress
        self.had_data = done > 0
        self.fatal: FreightError | None = None  # the error that ends the attempt
        self.size = size
        self.speed = SpeedMeter()
        self.limiter = limiter
        self.global_limiter = global_limiter

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped("stopped")

    def set_fatal(self, exc: FreightError) -> None:
        with self.lock:
            if self.fatal is None:
                self.fatal = exc

    def throttle(self, n: int) -> None:
        """Wait as the download's and the global speed limits ask for ``n`` bytes."""
        wait = max(self.limiter.delay(n), self.global_limiter.delay(n))
        if wait > 0:
            self.stop.wait(wait)


def request_headers(store: Store, download: Download) -> dict[str, str]:
    """The headers every request of the download carries: the user's, its secrets, Referer."""
    headers = dict(download.headers)
    headers.update(store.secret_headers(download.id))
    if download.referrer and not any(k.lower() == "referer" for k in headers):
        headers["Referer"] = download.referrer
    return headers


def learnt(
    download: Download, reply: Reply, keep: list[PartFile] | None = None
) -> dict[str, object]:
    """What the probe's reply tells about the download, as fields of its row; the name is
    chosen and claimed (files.reserve) when it has none yet or it was taken meanwhile.

    ``keep``: the .part a claim creates is appended there open and locked (as
    :func:`open_locked` gives it) instead of being closed, for the caller to write through
    it (finisher.py): one open and one close fewer per file."""
    fields: dict[str, object] = {
        "final_url": reply.url,
        "size": reply.size,
        "resumable": reply.ranged and reply.size is not None,
        "etag": reply.validators.etag,
        "last_modified": reply.validators.last_modified,
        "mime": (reply.content_type or "").split(";")[0].strip() or download.mime,
    }
    if download.name is None:
        name = files.choose_name(download.requested_name, reply.content_disposition, reply.url,
                                 reply.content_type)
        fields["name"] = _claim(download.dir, name, keep)
    elif (
        download.part_path
        and not os.path.exists(download.part_path)
        and os.path.lexists(os.path.join(download.dir, download.name))
    ):
        # Our name was taken meanwhile: never write over someone else's file.
        fields["name"] = _claim(download.dir, download.name, keep)
    return fields


def _claim(folder: str, name: str, keep: list[PartFile] | None) -> str:
    if keep is None:
        return files.reserve(folder, name)
    claimed, part = files.claim(folder, name)
    # Locked although this process created it a moment ago: a download whose recorded
    # name is the same and whose .part is gone reopens that path (O_CREAT, no O_EXCL).
    keep.append(_locked(part))
    return claimed


def open_locked(
    path: str, *, create: bool = True, on_sync_failure: Callable[[], None] | None = None
) -> files.PartFile:
    """The download's ``.part``, locked against another Freight process (BusyError)."""
    return _locked(files.PartFile(path, create=create, on_sync_failure=on_sync_failure))


def _locked(part: files.PartFile) -> files.PartFile:
    try:
        part.lock()
    except BusyError:
        part.close()
        raise
    return part


def records_fit(part: files.PartFile, segments: list[Segment]) -> bool:
    """Whether the part holds every byte its records claim: one cut shorter (by another
    program, while paused) holds nothing past its end, and extending it would make the
    records of those bytes zeros."""
    return part.size_on_disk() >= max((s.pos for s in segments), default=0)


def still_at(part: files.PartFile, path: str) -> bool:
    """Whether ``path`` is still the very file ``part`` has open (same device and inode)."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return False
    return (found.st_dev, found.st_ino) == part.identity()
