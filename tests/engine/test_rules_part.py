"""Rules of ``NAME.part``: never opened through a symlink, the file finalised is the one
reserved, and a failed sync invalidates the unsynced progress record."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from freight.config import EngineSettings
from freight.engine import files
from freight.engine.http.scripted import Rule, ScriptedSource
from freight.engine.transfer import Transfer
from freight.models import DownloadState
from freight.store import Store

from engine.scripted_support import FAST, URL, data_of

SIZE = 300_000


def run(store: Store, download_id: int, source: ScriptedSource, **settings: Any) -> Any:
    transfer = Transfer(store, download_id, EngineSettings(**{**FAST, **settings}), source=source)
    return transfer.run()


def paused(store: Store, folder: Path) -> int:
    folder.mkdir(exist_ok=True)
    download = store.add(URL, str(folder), state=DownloadState.ACTIVE)
    holder: list[Transfer] = []
    count = [0]

    def pause_late() -> None:
        count[0] += 1
        if count[0] == 8:
            holder[0].stop("pause")

    source = ScriptedSource(data_of(SIZE), rules=[
        Rule(match=lambda r: r.start > 0, drop_after=20_000, times=None, before=pause_late),
    ])
    transfer = Transfer(store, download.id, EngineSettings(**FAST), source=source)
    holder.append(transfer)
    assert transfer.run().state is DownloadState.PAUSED
    assert store.get(download.id).done > 0
    store.set_state(download.id, DownloadState.ACTIVE)
    return download.id


@pytest.mark.parametrize("target", ["existing", "dangling"])
def test_a_symlink_swapped_in_for_the_part_is_never_followed(
    store: Store, tmp_path: Path, target: str
) -> None:
    download_id = paused(store, tmp_path / "dl")
    part = Path(str(store.get(download_id).part_path))
    outside = tmp_path / "outside" / "victim"
    outside.parent.mkdir()
    if target == "existing":
        outside.write_bytes(b"precious")
    part.unlink()
    part.symlink_to(outside)
    ended = run(store, download_id, ScriptedSource(data_of(SIZE)))
    assert ended.state is DownloadState.FAILED and ended.error_kind == "local_io", ended
    assert "symbolic link" in (ended.error or "")
    if target == "existing":
        assert outside.read_bytes() == b"precious"
    else:
        assert not outside.exists()
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["data.bin.part"]


def test_the_file_finalised_is_the_one_reserved(store: Store, tmp_path: Path) -> None:
    """The .part is replaced by a symlink while the transfer runs: finalize must not give
    the final name to the symlink (nor to any other file than the one written)."""
    (tmp_path / "dl").mkdir()
    download = store.add(URL, str(tmp_path / "dl"), state=DownloadState.ACTIVE)
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    swapped = threading.Event()
    once = threading.Lock()

    def swap() -> None:
        with once:
            if swapped.is_set():
                return
            part = Path(str(store.get(download.id).part_path))
            part.rename(part.with_name("moved-away"))
            part.symlink_to(outside)
            swapped.set()

    source = ScriptedSource(data_of(SIZE), rules=[
        Rule(match=lambda r: r.start > 0, before=swap, times=None),
    ])
    ended = run(store, download.id, source)
    assert swapped.is_set()
    final = tmp_path / "dl" / "data.bin"
    assert not final.is_symlink()
    if ended.state is DownloadState.COMPLETED:
        assert final.read_bytes() == data_of(SIZE)
    else:
        assert ended.error_kind == "local_io" and not os.path.lexists(final), ended
    assert outside.read_bytes() == b"precious"


class FailingSync(files.PartFile):
    """fdatasync fails (EIO) on its second call, and the pages written since the last good
    sync are lost, as they may be after a real writeback error. A real EIO from fdatasync
    cannot be produced here (it needs a failing device), so the failure is injected at the
    one call that meets the kernel: PartFile._fdatasync."""

    calls = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsynced: list[tuple[int, int]] = []

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        super().pwrite(data, offset)
        self.unsynced.append((offset, len(data)))

    def _fdatasync(self) -> None:
        FailingSync.calls += 1
        if FailingSync.calls == 2:
            for offset, length in list(self.unsynced):
                os.pwrite(self.fd, bytes(length), offset)
            raise OSError(errno.EIO, "Input/output error")
        self.unsynced.clear()
        super()._fdatasync()


def test_a_failed_sync_invalidates_the_unsynced_record(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dl").mkdir()
    download = store.add(URL, str(tmp_path / "dl"), state=DownloadState.ACTIVE)
    # Slow enough for several unsynced records between the first (good) checkpoint and the
    # second (failing) one.
    store.update(download.id, limit=300_000)
    FailingSync.calls = 0
    monkeypatch.setattr(files, "PartFile", FailingSync)
    ended = run(store, download.id, ScriptedSource(data_of(SIZE)), checkpoint_interval=0.2)
    assert FailingSync.calls >= 2
    assert ended.state is DownloadState.FAILED and ended.error_kind == "local_io", ended
    # The failed checkpoint ended the control loop: its workers were stopped and joined.
    assert [t for t in threading.enumerate() if t.name.startswith(f"dl{download.id}-")] == []
    monkeypatch.undo()

    store.set_state(download.id, DownloadState.ACTIVE)
    store.update(download.id, limit=None)
    done = run(store, download.id, ScriptedSource(data_of(SIZE)))
    assert done.state is DownloadState.COMPLETED, (done.state, done.error)
    assert Path(str(done.path)).read_bytes() == data_of(SIZE)


def test_a_part_cut_shorter_than_its_records_is_not_trusted(store: Store, tmp_path: Path) -> None:
    """The .part lost its tail while paused (cut by another program): the records of bytes
    past its end describe nothing on disk, and extending it would turn them into zeros."""
    download_id = paused(store, tmp_path / "dl")
    part = Path(str(store.get(download_id).part_path))
    furthest = max(s.pos for s in store.load_segments(download_id))
    with open(part, "r+b") as f:
        f.truncate(furthest // 2)
    done = run(store, download_id, ScriptedSource(data_of(SIZE)))
    assert done.state is DownloadState.COMPLETED, (done.state, done.error)
    assert Path(str(done.path)).read_bytes() == data_of(SIZE)


def test_a_restart_writes_the_file_it_will_finalise(store: Store, tmp_path: Path) -> None:
    """While the file changes on the server, another program deletes the .part and takes
    its name: the restart reserves a new name, and must write into that file, not into the
    deleted one it still holds open."""
    folder = tmp_path / "dl"
    folder.mkdir()
    download = store.add(URL, str(folder), state=DownloadState.ACTIVE)
    new = data_of(SIZE - 5000, seed=3)
    once = threading.Lock()
    taken = threading.Event()

    def take_the_name() -> None:
        with once:
            if not taken.is_set():
                Path(str(store.get(download.id).part_path)).unlink()
                (folder / "data.bin").write_bytes(b"someone else's")
                taken.set()

    source = ScriptedSource(data_of(SIZE), rules=[
        Rule(match=lambda r: r.start > 0, before=take_the_name, change=(new, '"v2"')),
    ])
    done = run(store, download.id, source)
    assert taken.is_set()
    assert done.state is DownloadState.COMPLETED, (done.state, done.error)
    assert done.name == "data (1).bin"
    assert (folder / "data (1).bin").read_bytes() == new
    assert (folder / "data.bin").read_bytes() == b"someone else's"


def unknown_total(data: bytes) -> ScriptedSource:
    """A server that answers every range with at most 64 KiB and a ``*`` total
    (``bytes 0-N/*``, RFC 9110 §14.4: "the complete length is unknown")."""
    return ScriptedSource(data, rules=[Rule(star=True, cap=64 * 1024, times=None)])


def test_a_part_of_unknown_total_is_never_saved_as_the_file(store: Store, tmp_path: Path) -> None:
    (tmp_path / "dl").mkdir()
    download = store.add(URL, str(tmp_path / "dl"), state=DownloadState.ACTIVE)
    ended = run(store, download.id, unknown_total(data_of(SIZE)))
    if ended.state is DownloadState.COMPLETED:
        assert Path(str(ended.path)).read_bytes() == data_of(SIZE)
    else:
        assert ended.state is DownloadState.FAILED and "unknown" in (ended.error or ""), ended
        assert not (tmp_path / "dl" / "data.bin").exists()
