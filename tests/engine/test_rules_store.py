"""Rules: SQLite errors map into Freight's error tree at the store's boundary; a Transfer whose
store fails ends cleanly with every worker joined; the migration is atomic across processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

from freight.config import EngineSettings
from freight.engine.http.scripted import Rule, ScriptedSource
from freight.engine.transfer import Transfer
from freight.errors import StoreError
from freight.models import DownloadState, Segment
from freight.store import SCHEMA_VERSION, Store

ROUNDS = 40


def open_fresh_files(folder: str, barrier: Any, errors: Any) -> None:
    for n in range(ROUNDS):
        barrier.wait(30)
        try:
            Store(Path(folder) / f"{n}.db").close()
        except Exception as exc:  # reported to the test, whatever it is
            errors.put(f"round {n}: {type(exc).__name__}: {exc}")


def test_two_processes_opening_a_fresh_database_at_once_never_race(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    errors = ctx.Queue()
    procs = [
        ctx.Process(target=open_fresh_files, args=(str(tmp_path), barrier, errors))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    assert [p.exitcode for p in procs] == [0, 0]
    for n in range(ROUNDS):
        db = sqlite3.connect(tmp_path / f"{n}.db")
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.close()


def lock_database(path: Path) -> sqlite3.Connection:
    """Another program holding the write lock (RESERVED) of the database."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_locked_database_is_a_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db", timeout=0.05)
    d = store.add("http://127.0.0.1/f", str(tmp_path))
    other = lock_database(tmp_path / "freight.db")
    try:
        for write in (
            lambda: store.save_progress(d.id, [Segment(0, 10, 5)], 5),
            lambda: store.set_state(d.id, DownloadState.ACTIVE),
            lambda: store.add("http://127.0.0.1/g", str(tmp_path)),
            lambda: store.clear_progress(d.id),
        ):
            try:
                write()
            except StoreError as exc:
                assert "locked" in str(exc)
            else:
                raise AssertionError("a write to a locked database succeeded")
        assert store.get(d.id).done == 0  # reads still work in WAL mode
    finally:
        other.rollback()
        other.close()
    store.save_progress(d.id, [Segment(0, 10, 5)], 5)  # and writes once it is free
    store.close()


def test_a_failing_store_ends_the_transfer_cleanly_with_its_workers_joined(
    tmp_path: Path,
) -> None:
    db = tmp_path / "freight.db"
    store = Store(db, timeout=0.05)
    (tmp_path / "dl").mkdir()
    d = store.add("http://files.test/f.bin", str(tmp_path / "dl"), state=DownloadState.ACTIVE)
    held: list[sqlite3.Connection] = []

    def lock() -> None:
        if not held:
            held.append(lock_database(db))

    data = bytes(range(256)) * 2000
    source = ScriptedSource(data, rules=[Rule(match=lambda r: r.start > 0, before=lock)])
    settings = EngineSettings(
        connections=4, adaptive=False, min_split_size=16 * 1024, read_size=4096,
        checkpoint_interval=0.05, retry_base=0.0, retry_max=0.01,
    )
    # A rate limit keeps the workers busy while the store fails under them.
    store.update(d.id, limit=400_000)
    transfer = Transfer(store, d.id, settings, source=source)
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(transfer.run()))
    runner.start()
    runner.join(30)
    try:
        assert not runner.is_alive(), "run() did not return"
        assert result, "run() raised"
        mine = [t.name for t in threading.enumerate() if t.name.startswith(f"dl{d.id}-")]
        assert mine == []  # every worker joined before run() returned
        ended = result[0]
        assert ended.error_kind == "store", (ended.state, ended.error)
        assert "locked" in (ended.error or "") and "internal" not in (ended.error or "")
    finally:
        for other in held:
            other.rollback()
            other.close()
    store.close()


def test_the_queue_order_is_read_from_an_index_not_sorted(tmp_path: Path) -> None:
    # `list` pages (the popup's newest page among 10,000), the end of the queue for each
    # add and the next queued downloads are read in position order: an index, never a
    # sort of the whole table (SQLite's "USE TEMP B-TREE FOR ORDER BY").
    store = Store(tmp_path / "freight.db")
    store.close()
    db = sqlite3.connect(tmp_path / "freight.db")
    for query in (
        "SELECT * FROM downloads ORDER BY position, id LIMIT 100 OFFSET 9900",
        "SELECT coalesce(max(position), 0) + 1 FROM downloads",
        "SELECT * FROM downloads WHERE state = 'queued' ORDER BY position, id LIMIT 16",
    ):
        plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + query))
        assert "TEMP B-TREE" not in plan, (query, plan)
        assert "INDEX" in plan, (query, plan)
