"""Rule: a restart from zero clears every progress record (segment rows, the unsynced record,
``done``) in one transaction, before the first byte of the new attempt is written.

A kill is simulated for real: the attempt that restarts runs in a child process whose
scripted server calls ``os._exit`` at the first range request after the probe, that is after
the new ``.part`` was created and preallocated (zeros) and before any checkpoint could
replace the old records. A fresh Transfer then resumes, and the file must be the server's.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from freight.config import EngineSettings
from freight.engine.http.scripted import Rule, ScriptedSource
from freight.engine.transfer import Transfer
from freight.models import DownloadState
from freight.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.scripted_support import FAST, URL, data_of

SIZE = 300_000


def transfer(store: Store, download_id: int, source: ScriptedSource, **settings: Any) -> Transfer:
    return Transfer(store, download_id, EngineSettings(**{**FAST, **settings}), source=source)


def paused_half_way(store: Store, folder: Path) -> int:
    """A download stopped by the user with several recorded segments holding data."""
    download = store.add(URL, str(folder), state=DownloadState.ACTIVE)
    holder: list[Transfer] = []
    count = [0]

    def pause_late() -> None:
        count[0] += 1
        if count[0] == 12:
            holder[0].stop("pause")

    source = ScriptedSource(data_of(SIZE), rules=[
        Rule(match=lambda r: r.start > 0, drop_after=20_000, times=None, before=pause_late),
    ])
    t = transfer(store, download.id, source)
    holder.append(t)
    assert t.run().state is DownloadState.PAUSED
    recorded = [s for s in store.load_segments(download.id) if s.pos > s.start]
    assert len(recorded) > 1 and any(s.start > 0 for s in recorded)
    store.set_state(download.id, DownloadState.ACTIVE)
    return download.id


def killed_after_restart(db: str, download_id: int) -> None:
    """The child: the next attempt, killed at its first range request after the probe."""
    store = Store(db)

    def kill() -> None:
        os._exit(9)

    # The probe's own body drops at once, so that nothing of the new attempt is written.
    source = ScriptedSource(data_of(SIZE), rules=[
        Rule(match=lambda r: "If-Range" not in r.headers, drop_after=0),
        Rule(before=kill, times=None),
    ])
    transfer(store, download_id, source).run()
    os._exit(0)  # not reached when the kill happened


def run_killed(db: Path, download_id: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=killed_after_restart, args=(str(db), download_id))
    child.start()
    child.join(60)
    assert child.exitcode == 9, child.exitcode


def resumed_file(store: Store, download_id: int) -> bytes:
    source = ScriptedSource(data_of(SIZE))
    done = transfer(store, download_id, source).run()
    assert done.state is DownloadState.COMPLETED, (done.state, done.error)
    assert done.path is not None
    return Path(done.path).read_bytes()


@pytest.mark.parametrize("how", ["part deleted", "name taken"])
def test_a_restart_killed_before_a_checkpoint_never_trusts_the_old_records(
    tmp_path: Path, how: str
) -> None:
    db = tmp_path / "freight.db"
    folder = tmp_path / "dl"
    store = Store(db)
    download_id = paused_half_way(store, folder)
    part = Path(str(store.get(download_id).part_path))
    part.unlink()
    if how == "name taken":
        (folder / "data.bin").write_bytes(b"someone else's file")
    run_killed(db, download_id)
    assert resumed_file(store, download_id) == data_of(SIZE)
    if how == "name taken":
        assert (folder / "data.bin").read_bytes() == b"someone else's file"
    store.close()


def test_a_changed_file_clears_every_record_in_one_step(tmp_path: Path) -> None:
    """After a restart for a changed file, nothing recorded of the old version remains, and
    the row forgets its size and validators in the same transaction."""
    store = Store(tmp_path / "freight.db")
    download_id = paused_half_way(store, tmp_path / "dl")
    seen: list[tuple[int, int, int | None]] = []
    new = data_of(SIZE - 1000, seed=2)

    def look() -> None:
        # The probe of the attempt after the restart: the old records must be gone.
        row = store.get(download_id)
        seen.append((len(store.resume_segments(download_id, "x")), row.done, row.size))

    source = ScriptedSource(data_of(SIZE), rules=[
        Rule(match=lambda r: r.start > 0, change=(new, '"v2"')),
        Rule(match=lambda r: "If-Range" not in r.headers, before=look),
    ])
    done = transfer(store, download_id, source).run()
    assert done.state is DownloadState.COMPLETED, done.error
    assert Path(str(done.path)).read_bytes() == new
    assert seen and seen[0] == (0, 0, None)
    store.close()


def test_a_single_stream_restart_forgets_the_records_before_it_writes(tmp_path: Path) -> None:
    """A server that stops serving ranges: the download goes on as one stream from byte 0;
    stopped there, nothing recorded may claim bytes that the stream has not rewritten."""
    store = Store(tmp_path / "freight.db")
    download_id = paused_half_way(store, tmp_path / "dl")
    Path(str(store.get(download_id).part_path)).unlink()
    holder: list[Transfer] = []
    stopper = threading.Event()

    def shutdown() -> None:
        holder[0].stop("shutdown")
        stopper.set()

    source = ScriptedSource(data_of(SIZE), ranges=False, rules=[
        Rule(drop_after=5000), Rule(before=shutdown),
    ])
    t = transfer(store, download_id, source)
    holder.append(t)
    t.run()
    assert stopper.is_set()
    row = store.get(download_id)
    part = Path(str(row.part_path)).read_bytes()
    for s in store.resume_segments(download_id, "any") + store.load_segments(download_id):
        assert part[s.start : s.pos] == data_of(SIZE)[s.start : s.pos], s
    assert row.done <= len(part)
    store.close()


class StoppedAt(ScriptedSource):
    """A scripted server whose ``stop_at``-th request first shuts the transfer down."""

    def __init__(self, data: bytes, stop_at: int, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.stop_at = stop_at
        self.transfer: Transfer | None = None
        self.count = 0

    def open(self, asked: Any, *, lane: Any = None) -> Any:
        with self._lock:
            self.count += 1
            stop = self.count == self.stop_at
        if stop and self.transfer is not None:
            self.transfer.stop("shutdown")
        return super().open(asked, lane=lane)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    how=st.sampled_from(["part deleted", "name taken", "file changed", "no ranges", "part cut"]),
    pause_at=st.integers(2, 14),
    stop_at=st.integers(0, 10),
)
def test_any_restart_stopped_anywhere_then_resumed_saves_the_servers_file(
    tmp_path_factory: pytest.TempPathFactory, how: str, pause_at: int, stop_at: int
) -> None:
    """Explores: a paused download; something forces a restart from zero; the attempt is
    shut down at any request (or not at all); every record left describes bytes on disk;
    a fresh Transfer then saves exactly the server's current file."""
    from freight.engine.files import boot_id

    tmp = tmp_path_factory.mktemp("explore")
    store = Store(tmp / "freight.db")
    folder = tmp / "dl"
    folder.mkdir()
    download = store.add(URL, str(folder), state=DownloadState.ACTIVE)
    holder: list[Transfer] = []
    count = [0]

    def pause_late() -> None:
        count[0] += 1
        if count[0] == pause_at:
            holder[0].stop("pause")

    first = ScriptedSource(data_of(SIZE), rules=[
        Rule(match=lambda r: r.start > 0, drop_after=15_000, times=None, before=pause_late),
    ])
    holder.append(transfer(store, download.id, first))
    if holder[0].run().state is DownloadState.COMPLETED:
        store.close()
        return  # finished before the pause: nothing to restart
    store.set_state(download.id, DownloadState.ACTIVE)

    part = Path(str(store.get(download.id).part_path))
    data, etag, ranges = data_of(SIZE), '"v1"', True
    rules: list[Rule] = []
    if how in ("part deleted", "name taken") and part.exists():
        part.unlink()
    if how == "name taken":
        (folder / "data.bin").write_bytes(b"someone else's")
    if how == "file changed":
        data, etag = data_of(SIZE - 777, seed=5), '"v2"'
        rules.append(Rule(change=(data, etag)))
    if how == "no ranges":
        ranges = False
    if how == "part cut" and part.exists():
        os.truncate(part, part.stat().st_size // 3)
    second = StoppedAt(data_of(SIZE), stop_at, ranges=ranges, rules=rules)
    second.transfer = transfer(store, download.id, second)
    ended = second.transfer.run()

    if ended.state is not DownloadState.COMPLETED:
        row = store.get(download.id)
        at = Path(str(row.part_path))
        held = at.read_bytes() if row.part_path and at.exists() else b""
        if row.etag == etag:
            for s in store.resume_segments(download.id, boot_id()):
                assert held[s.start : s.pos] == data[s.start : s.pos], (s, how)
        store.set_state(download.id, DownloadState.ACTIVE)
        ended = transfer(store, download.id, ScriptedSource(data, etag=etag)).run()
    assert ended.state is DownloadState.COMPLETED, (ended.state, ended.error, how)
    assert Path(str(ended.path)).read_bytes() == data, how
    if how == "name taken":
        assert (folder / "data.bin").read_bytes() == b"someone else's"
    store.close()
