"""Rules: SQLite errors map into Freight's error tree at the store's boundary; a Transfer whose
store fails ends cleanly with every worker joined; the migration is atomic across processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

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
