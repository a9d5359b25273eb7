"""The store moves a download only along the transition table, and queues at the end."""

from __future__ import annotations

import itertools
import sqlite3

import pytest
from freight.errors import IllegalTransition, NotFound
from freight.models import TRANSITIONS, DownloadState
from freight.store import Store

S = DownloadState


def row(store_path, download_id: int) -> tuple:
    with sqlite3.connect(store_path) as db:  # a second connection: what is on disk
        return db.execute("SELECT state, error, error_kind, updated_at, finished_at "
                          "FROM downloads WHERE id = ?", (download_id,)).fetchone()


@pytest.mark.parametrize(("old", "new"), list(itertools.product(S, S)),
                         ids=lambda s: s.value)
def test_every_pair_of_states(tmp_path, old: DownloadState, new: DownloadState) -> None:
    path = tmp_path / "freight.db"
    store = Store(path)
    d = store.add("http://127.0.0.1/f", str(tmp_path), state=old)
    before = row(path, d.id)
    legal = new == old or new in TRANSITIONS[old]
    if legal:
        moved = store.set_state(d.id, new, error="why", error_kind="network")
        assert (moved.state, moved.error) == (new, "why")
        state, error, kind, updated, finished = row(path, d.id)
        assert (state, error, kind) == (new.value, "why", "network")
        assert updated >= before[3]
        assert (finished is not None) == (new == S.COMPLETED)
    else:
        with pytest.raises(IllegalTransition) as caught:
            store.set_state(d.id, new, error="why")
        assert caught.value.data == {"state": old.value, "wanted": new.value}
        assert row(path, d.id) == before  # nothing changed
    store.close()


def test_missing_download(tmp_path) -> None:
    store = Store(tmp_path / "freight.db")
    with pytest.raises(NotFound):
        store.set_state(42, S.ACTIVE)
    store.close()


def test_added_downloads_go_to_the_end_of_the_queue(tmp_path) -> None:
    store = Store(tmp_path / "freight.db")
    first = store.add("http://127.0.0.1/1", str(tmp_path))
    placed = store.add("http://127.0.0.1/2", str(tmp_path), position=100)
    last = store.add("http://127.0.0.1/3", str(tmp_path))
    assert (first.position, placed.position, last.position) == (1, 100, 101)
    assert [d.id for d in store.next_queued(2)] == [first.id, placed.id]
    store.set_state(first.id, S.ACTIVE)
    assert [d.id for d in store.next_queued(5)] == [placed.id, last.id]
    store.close()
