"""The end of a download: sync, verify, give the file its name, record it as completed.

- ``fdatasync`` before anything else: a completed download is on disk.
- A checksum, when given, is verified on the synced bytes; a mismatch deletes the ``.part``
  and forgets its name: nothing ever appears under the final name.
- ``files.finalize`` moves the part to its final name with ``renameat2(RENAME_NOREPLACE)``,
  or links it there and removes the part (both fail if the name exists, which makes "never
  overwrite" atomic); if the name was taken meanwhile the file gets the next free numbered
  name, and the user is told.
- The state moves to ``completed`` through the StateKeeper, with the final name and size.

:func:`conclude` is the end of every run that did not complete: the state its error means
(lifecycle.end_state), a stop's, or none for a busy file; and when the store itself fails
there, the run still ends, with the error told but not recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from freight.engine import files, lifecycle
from freight.engine.checksum import digest, parse_checksum
from freight.errors import BusyError, ChecksumError, FreightError, Stopped, StoreError
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Store

log = logging.getLogger("freight.transfer")


def complete(
    keeper: StateKeeper,
    download_id: int,
    part: files.PartFile,
    size: int,
    notice: Callable[[str], None],
) -> Download:
    """Finish ``part`` (``size`` bytes) as the download's file; ``part`` is closed in any case."""
    try:
        download = keeper.store.get(download_id)
    except BaseException:
        part.close()
        raise
    name = seal(keeper.store, download, part, size, notice)
    download = keeper.complete(download_id, name, size)
    log_completed(download)
    return download


def log_completed(download: Download) -> None:
    log.info("download %s: completed %s (%d bytes)", download.id, download.path, download.size)


def seal(
    store: Store,
    download: Download,
    part: files.PartFile,
    size: int,
    notice: Callable[[str], None],
) -> str:
    """Sync ``part``, verify its checksum, give it its final name; the name (``part`` is
    closed in any case). The caller records the completion (one download, or a batch)."""
    try:
        assert download.part_path is not None and download.name is not None
        if download.size is None or download.size != size:
            download = store.update(download.id, size=size)
        status = part.status()  # one fstat for the size and the identity
        if status.st_size != size:
            part.truncate(size)
        part.sync()
        if download.checksum:
            algo, want = parse_checksum(download.checksum)
            got = digest(part, algo, size)
            if got != want:
                part.close()
                files.remove_quietly(download.part_path)
                store.clear_progress(download.id, name=None)
                raise ChecksumError(f"{algo} mismatch: expected {want}, got {got}")
        identity = (status.st_dev, status.st_ino)  # the open file's: it cannot change
    finally:
        part.close()
    assert download.part_path is not None and download.name is not None
    name = files.finalize(download.part_path, download.dir, download.name, identity)
    if name != download.name:
        notice(f"{download.name} appeared meanwhile; saved as {name}")
    return name


def conclude(
    keeper: StateKeeper,
    download_id: int,
    outcome: Exception | None,
    *,
    stop_reason: str,
    first_row: Download,
) -> Download:
    """The download as it ends after ``outcome`` (None: the run ended without completing
    and without an error); every worker has ended and the part is closed."""
    try:
        return _conclude(keeper, download_id, outcome, stop_reason)
    except StoreError as exc:
        # The store failed (a full disk under FREIGHT_HOME, a locked database): the row as
        # last read, with the error, which cannot be recorded; it resumes as it stands.
        log.error("download %s: %s", download_id, exc)
        try:
            row = keeper.store.get(download_id)
        except StoreError:
            row = first_row
        return replace(row, state=DownloadState.FAILED, error=str(exc), error_kind=exc.kind)


def _conclude(
    keeper: StateKeeper, download_id: int, outcome: Exception | None, stop_reason: str
) -> Download:
    store = keeper.store
    if outcome is None:
        return store.get(download_id)
    if isinstance(outcome, Stopped):
        if stop_reason == "shutdown":
            return store.get(download_id)  # stays active: the next start resumes it
        if stop_reason == "cancel":
            files.remove_quietly(store.get(download_id).part_path)
            store.clear_progress(download_id)
            return keeper.move(download_id, DownloadState.REMOVED)
        return keeper.move(download_id, DownloadState.PAUSED)
    if isinstance(outcome, BusyError):
        # Another process owns this download: leave its state alone.
        log.warning("download %s: %s", download_id, outcome)
        return store.get(download_id)
    kind: str | None = None
    if not isinstance(outcome, FreightError):  # a bug: keep the daemon up and the data
        log.error("download %s: unexpected error", download_id, exc_info=outcome)
        outcome, kind = FreightError(f"internal error: {outcome!r}"), "internal"
    state = lifecycle.end_state(outcome)
    log.info("download %s: %s (%s)", download_id, state.value, outcome)
    return keeper.move(download_id, state, error=str(outcome), error_kind=kind or outcome.kind)
