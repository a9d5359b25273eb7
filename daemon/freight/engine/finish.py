"""The end of a download: sync, verify, give the file its name, record it as completed.

- ``fdatasync`` before anything else: a completed download is on disk.
- A checksum, when given, is verified on the synced bytes; a mismatch deletes the ``.part``
  and forgets its name: nothing ever appears under the final name.
- ``files.finalize`` links the part to its final name (``link`` fails if the name exists,
  which makes "never overwrite" atomic), then removes the part; if the name was taken
  meanwhile the file gets the next free numbered name, and the user is told.
- The state moves to ``completed`` through the StateKeeper, with the final name and size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from freight.engine import files
from freight.engine.checksum import digest, parse_checksum
from freight.errors import ChecksumError
from freight.models import Download
from freight.states import StateKeeper

log = logging.getLogger("freight.transfer")


def complete(
    keeper: StateKeeper,
    download_id: int,
    part: files.PartFile,
    size: int,
    notice: Callable[[str], None],
) -> Download:
    """Finish ``part`` (``size`` bytes) as the download's file; ``part`` is closed in any case."""
    store = keeper.store
    try:
        download = store.get(download_id)
        assert download.part_path is not None and download.name is not None
        if download.size is None or download.size != size:
            download = store.update(download_id, size=size)
        if part.size_on_disk() != size:
            part.truncate(size)
        part.sync()
        if download.checksum:
            algo, want = parse_checksum(download.checksum)
            got = digest(part, algo, size)
            if got != want:
                part.close()
                files.remove_quietly(download.part_path)
                store.clear_progress(download_id)
                store.update(download_id, name=None)
                raise ChecksumError(f"{algo} mismatch: expected {want}, got {got}")
    finally:
        part.close()
    name = files.finalize(download.part_path, download.dir, download.name)
    if name != download.name:
        notice(f"{download.name} appeared meanwhile; saved as {name}")
    download = keeper.complete(download_id, name, size)
    log.info("download %s: completed %s (%d bytes)", download_id, download.path, size)
    return download
