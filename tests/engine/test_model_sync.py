"""A failed ``fdatasync``, at any checkpoint of a download, against the model's server.

The rule (DESIGN, rules of the engine): a failed sync invalidates the unsynced progress
record, because the bytes it covers may never reach the disk (after EIO the kernel may drop
the dirty pages: fsync(2)). The download must end cleanly as well: no worker thread left.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from freight.engine import files
from freight.engine.limits import HostCaps
from freight.engine.transfer import Transfer
from freight.models import DownloadState
from freight.store import Store
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_model_transfer import HOST_CAP, SETTINGS, URL, ModelServer, make_version


def _workers(download_id: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"dl{download_id}-w")]


def _run_with_a_failed_sync(fail_at: int, size: int) -> tuple[Store, int, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="freight-model-"))
    store = Store(tmp / "freight.db")
    (tmp / "dl").mkdir()
    download = store.add(URL, str(tmp / "dl"), state=DownloadState.ACTIVE)
    # A speed limit: checkpoints and unsynced records happen while the file comes in.
    store.update(download.id, limit=100_000)
    server = ModelServer(make_version(1, size, "strong"))
    calls = [0]
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        calls[0] += 1
        if calls[0] == fail_at:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    # Checkpoints less often than unsynced records (segmented.FAST_RECORD), so that the
    # record a failed sync must invalidate exists.
    settings = dataclasses.replace(SETTINGS, checkpoint_interval=0.1)
    transfer = Transfer(store, download.id, settings, host_caps=HostCaps(HOST_CAP),
                        source=server)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fdatasync", fdatasync)
        transfer.run()
    return store, download.id, tmp


@given(fail_at=st.integers(1, 4), size=st.integers(20_000, 60_000))
@settings(max_examples=10, deadline=None)
def test_a_failed_sync_leaves_no_worker_running(fail_at: int, size: int) -> None:
    store, download_id, tmp = _run_with_a_failed_sync(fail_at, size)
    leftover = _workers(download_id)
    try:
        assert not leftover, [t.name for t in leftover]
    finally:
        for thread in leftover:  # never leak them into the tests that follow
            thread.join(10)
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


@given(fail_at=st.integers(1, 4), size=st.integers(20_000, 60_000))
@settings(max_examples=10, deadline=None)
def test_a_failed_sync_invalidates_the_unsynced_record(fail_at: int, size: int) -> None:
    store, download_id, tmp = _run_with_a_failed_sync(fail_at, size)
    for thread in _workers(download_id):
        thread.join(10)  # see the test above
    try:
        download = store.get(download_id)
        if download.state is DownloadState.COMPLETED:
            return  # the failing sync was not reached
        trusted = store.resume_segments(download_id, files.boot_id())
        assert trusted == store.load_segments(download_id), (download.state, download.error)
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
