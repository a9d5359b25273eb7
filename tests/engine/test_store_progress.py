"""Progress records: the synced checkpoint and the unsynced record trusted only in its boot."""

from __future__ import annotations

from freight.models import Segment
from freight.store import Store


def test_resume_point_prefers_the_unsynced_record_of_this_boot(tmp_path) -> None:
    store = Store(tmp_path / "freight.db")
    d = store.add("http://127.0.0.1/f", str(tmp_path))
    store.save_progress(d.id, [Segment(0, 100, 10), Segment(100, 200, 100)], 10)
    store.save_fast_progress(d.id, "boot-a", [Segment(0, 100, 60), Segment(100, 200, 150)], 110)

    assert [s.pos for s in store.resume_segments(d.id, "boot-a")] == [60, 150]
    # After a restart of the machine the page cache is gone: only synced bytes count.
    assert [s.pos for s in store.resume_segments(d.id, "boot-b")] == [10, 100]
    assert [s.pos for s in store.resume_segments(d.id, None)] == [10, 100]
    # A later synced checkpoint that holds more wins over an older unsynced record.
    store.save_progress(d.id, [Segment(0, 100, 90), Segment(100, 200, 190)], 180)
    assert [s.pos for s in store.resume_segments(d.id, "boot-a")] == [90, 190]
    # Starting again from zero forgets both.
    store.clear_progress(d.id)
    assert store.resume_segments(d.id, "boot-a") == []
    store.close()


def test_a_version_1_database_is_migrated_keeping_its_downloads(tmp_path) -> None:
    import sqlite3

    from freight import store as store_module

    path = tmp_path / "freight.db"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in store_module.MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA application_id = {store_module.APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO downloads (url, dir, state, created_at, updated_at) "
        "VALUES ('http://127.0.0.1/a', '/tmp', 'paused', 0, 0)"
    )
    db.close()
    store = Store(path)
    assert [d.url for d in store.list()[0]] == ["http://127.0.0.1/a"]
    store.save_fast_progress(1, "b", [Segment(0, 10, 5)], 5)
    assert store.resume_segments(1, "b")[0].pos == 5
    store.close()
