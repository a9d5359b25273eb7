"""Rules: a download's secret headers are what is stored, whenever they are asked for: the
start's note that a download has none (which spares the small file's one request a query)
never hides headers set since, nor a removal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from freight.errors import NotFound
from freight.secrets import Sealer
from freight.store import Store


def start_all(store: Store) -> list[int]:
    return [d.id for d in store.start_queued(lambda read: [d.id for d in read(100, None)])]


def test_a_started_download_without_secrets_is_answered_without_a_query(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db", sealer=Sealer(os.urandom(32)))
    plain = store.add("http://127.0.0.1/plain", str(tmp_path))
    sealed = store.add("http://127.0.0.1/sealed", str(tmp_path),
                       secret_headers={"Cookie": "a=1"})
    assert start_all(store) == [plain.id, sealed.id]
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    assert store.secret_headers(plain.id) == {}
    assert statements == []
    assert store.secret_headers(sealed.id) == {"Cookie": "a=1"}
    assert store.secret_headers(plain.id) == {}  # asked again: read as usual
    assert len(statements) == 2
    store._db.set_trace_callback(None)
    store.close()


def test_headers_set_after_the_start_are_the_ones_answered(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db", sealer=Sealer(os.urandom(32)))
    d = store.add("http://127.0.0.1/f", str(tmp_path))
    start_all(store)
    store.set_secret_headers(d.id, {"Authorization": "Bearer t"})
    assert store.secret_headers(d.id) == {"Authorization": "Bearer t"}
    store.close()


def test_a_download_deleted_after_the_start_is_not_found(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db")
    d = store.add("http://127.0.0.1/f", str(tmp_path))
    start_all(store)
    store.delete(d.id)
    with pytest.raises(NotFound):
        store.secret_headers(d.id)
    store.close()
