"""Rules: the store builds a Download from a row by position (one function owns it); what it
builds equals the row read column by column by name, for every column, NULLs, booleans and
the headers' JSON included, whichever method read it."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from freight.models import Download, DownloadState
from freight.store import Lane, QueueReader, Store

#: Model attribute -> column, where the two names differ.
RENAMED = {"limit": "rate_limit"}


def by_name(path: Path, download_id: int) -> Download:
    """The row as a Download, each field read by its column's name (the oracle)."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT * FROM downloads WHERE id = ?", (download_id,)).fetchone()
    finally:
        db.close()
    values = {f.name: row[RENAMED.get(f.name, f.name)] for f in dataclasses.fields(Download)}
    values["state"] = DownloadState(values["state"])
    values["headers"] = json.loads(values["headers"])
    values["resumable"] = bool(values["resumable"])
    values["insecure"] = bool(values["insecure"])
    return Download(**values)


def every_field_set(store: Store, folder: str) -> Download:
    """A row whose every column holds a value of its own (no two alike), none a default."""
    added = store.add(
        "http://127.0.0.1/every", folder, name="every.bin", requested_name="asked.bin",
        referrer="http://127.0.0.1/page", mime="application/x-every", size=1234, done=56,
        resumable=True, etag='"e-tag"', last_modified="Tue, 01 Dec 2026 10:00:00 GMT",
        connections=7, limit=8910, checksum="sha256:" + "ab" * 32,
        headers={"X-One": "1", "Accept": "*/*"}, position=42, insecure=True,
        state=DownloadState.FAILED,
    )
    store.set_state(added.id, DownloadState.FAILED, error="it broke", error_kind="http")
    return store.update(added.id, final_url="http://127.0.0.1/final", finished_at=1.5)


def test_a_row_with_every_field_set_is_built_as_read_by_name(tmp_path: Path) -> None:
    path = tmp_path / "freight.db"
    store = Store(path)
    made = every_field_set(store, str(tmp_path))
    expected = by_name(path, made.id)
    assert expected.headers == {"X-One": "1", "Accept": "*/*"}
    assert expected.resumable is True and expected.insecure is True
    assert made == expected
    assert made.resumable is True and made.insecure is True  # not 1: equal, but not a bool
    assert store.get(made.id) == expected
    assert store.get_many([made.id]) == [expected]
    assert store.list()[0] == [expected]
    assert store.list([DownloadState.FAILED])[0] == [expected]
    assert store.waiting_for_a_link(str(tmp_path), "asked.bin") == []
    assert store.find_unfinished(made.url, str(tmp_path), "asked.bin") == expected
    store.close()


def test_a_row_of_nulls_and_defaults_is_built_as_read_by_name(tmp_path: Path) -> None:
    path = tmp_path / "freight.db"
    store = Store(path)
    (added,) = store.add_many([{"url": "http://127.0.0.1/bare", "dir": str(tmp_path)}])
    expected = by_name(path, added.id)
    assert expected.size is None and expected.name is None and expected.headers == {}
    assert expected.resumable is False and expected.insecure is False
    assert added == expected
    assert added.resumable is False and added.insecure is False
    assert store.get(added.id) == expected
    assert store.next_queued(1) == [expected]
    assert store.next_queued_for_lane(
        1, small_size=10, small=True, unknown_small=True) == [expected]
    shown: list[list[Download]] = []

    def choose(read: QueueReader) -> list[int]:
        rows = read(1, None)
        shown.append([dataclasses.replace(d) for d in rows])
        return [d.id for d in rows]

    (started,) = store.start_queued(choose)
    assert shown == [[expected]]
    # Built once, before the move, and changed as the statement changed the row.
    assert started == by_name(path, added.id)
    assert started.state == DownloadState.ACTIVE
    store.close()


def test_every_column_but_the_sealed_headers_reaches_the_download(tmp_path: Path) -> None:
    # A column added to the table must be added to the Download (or be a secret): a row
    # built by position would otherwise drop it without a word.
    path = tmp_path / "freight.db"
    Store(path).close()
    db = sqlite3.connect(path)
    columns = {row[1] for row in db.execute("PRAGMA table_info(downloads)")}
    db.close()
    fields = {RENAMED.get(f.name, f.name) for f in dataclasses.fields(Download)}
    assert columns - {"sealed_headers"} == fields


def test_a_fill_reads_the_lane_from_the_index_and_starts_by_primary_key(tmp_path: Path) -> None:
    # A fill runs each time a small file's slot frees: its statements must not grow with
    # the queue (the start looked its rows up among every queued row through the state index).
    path = tmp_path / "freight.db"
    store = Store(path)
    store.add_many([{"url": f"http://127.0.0.1/{n}", "dir": str(tmp_path)} for n in range(50)])
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    lane = Lane(small_size=100, small=True, unknown_small=True)
    started = store.start_queued(lambda read: [d.id for d in read(4, lane)])
    store._db.set_trace_callback(None)
    assert [d.id for d in started] == [1, 2, 3, 4]
    db = sqlite3.connect(path)
    plans = {}
    for sql in statements:
        if sql.startswith(("SELECT", "UPDATE")):
            plans[sql.split()[0]] = " ".join(
                str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sql))
    db.close()
    assert set(plans) == {"SELECT", "UPDATE"}, statements
    assert "USING INDEX downloads_by_state" in plans["SELECT"], plans
    assert "TEMP B-TREE" not in plans["SELECT"], plans
    assert "PRIMARY KEY" in plans["UPDATE"], plans
    store.close()


def test_what_the_choice_does_not_pick_stays_queued_and_a_failing_choice_moves_none(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "freight.db")
    added = store.add_many(
        [{"url": f"http://127.0.0.1/{n}", "dir": str(tmp_path)} for n in range(4)])
    store.set_state(added[1].id, DownloadState.PAUSED)
    seen: list[int] = []

    def every_other(read: QueueReader) -> list[int]:
        rows = read(10, None)
        seen.extend(d.id for d in rows)
        again = read(1, None)  # read twice: the same object, started once
        assert again[0] is rows[0]
        return [rows[2].id, rows[0].id, again[0].id, 999]  # 999: not read, never started

    started = store.start_queued(every_other)
    assert seen == [added[0].id, added[2].id, added[3].id]  # queued ones, in queue order
    assert [d.id for d in started] == [added[3].id, added[0].id]  # in the order picked
    assert [d.id for d in store.next_queued(10)] == [added[2].id]

    def broken(read: QueueReader) -> list[int]:
        read(10, None)
        raise RuntimeError("a bug in the choice")

    with pytest.raises(RuntimeError):
        store.start_queued(broken)
    assert [d.id for d in store.next_queued(10)] == [added[2].id]
    store.close()
