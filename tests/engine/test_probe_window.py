"""The probe asks a bounded first window, and a 200 to If-Range with the same validators is
not a change (issue 12): real Transfers against a ScriptedSource, and validate's rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from freight.engine.http.head import Head, HeadHeaders
from freight.engine.http.scripted import Request, Rule, ScriptedSource
from freight.engine.http.validate import validate
from freight.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_scripted_transfer import FAST, data_of, on_disk, run, start

WINDOW = FAST["min_split_size"]  # transfer.probe_window: the min split size
DATE = "Tue, 01 Dec 2026 11:00:00 GMT"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()


def asked(request: Request, size: int) -> int:
    """The bytes a request made the server send: an open-ended range runs to the end (a real
    server pushes it into the socket whether it is read or not)."""
    if not request.ranged:
        return size
    end = size if request.end is None else min(request.end, size)
    return max(0, end - request.start)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(size=st.integers(1, 6 * WINDOW), connections=st.integers(1, 8))
def test_every_byte_is_asked_for_once(
    tmp_path_factory: pytest.TempPathFactory, size: int, connections: int
) -> None:
    """Every request is bounded, the probe's to its window: the ranges asked tile the file,
    so a server that pushes what it is asked for serves the file once, split or not."""
    folder = tmp_path_factory.mktemp("dl")
    store = Store(folder / "freight.db")
    try:
        data = data_of(size)
        source = ScriptedSource(data)
        download = start(store, folder / "dl")
        run(store, download, source, connections=connections)
        assert on_disk(store, download) == data
        probe = source.requests[0]
        assert probe.ranged and probe.start == 0 and probe.end == WINDOW
        assert sum(asked(r, size) for r in source.requests) == size
    finally:
        store.close()


@settings(max_examples=50, deadline=None)
@given(size=st.integers(1, 4 * WINDOW), window=st.integers(1, 4 * WINDOW))
def test_a_206_reaching_the_total_is_complete_though_shorter_than_asked(
    size: int, window: int
) -> None:
    """RFC 9110 §14.1.1: a range past the end is satisfied to the end; ``bytes
    0-(size-1)/size`` answers ``bytes=0-(W-1)`` for a file smaller than W, and is the file."""
    last = min(size, window)
    head = Head(206, "Partial Content", HeadHeaders([
        (b"Content-Range", f"bytes 0-{last - 1}/{size}".encode()),
        (b"Content-Length", str(last).encode()),
    ]), "http://files.test/f")
    reply = validate(head, 0, window, None, None)
    assert reply.ranged and reply.start == 0 and reply.end == last and reply.size == size
    assert not reply.short


def test_a_file_smaller_than_the_probe_window_comes_in_one_request(
    store: Store, tmp_path: Path
) -> None:
    data = data_of(WINDOW // 3)
    source = ScriptedSource(data)
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == data
    assert [(r.start, r.end, r.status) for r in source.requests] == [(0, WINDOW, 206)]
    assert not transfer.notices


def test_a_server_answering_the_bounded_probe_with_200_goes_one_stream(
    store: Store, tmp_path: Path
) -> None:
    data = data_of(5 * WINDOW)
    source = ScriptedSource(data, ranges=False)
    download = start(store, tmp_path / "dl")
    run(store, download, source)
    assert on_disk(store, download) == data
    assert len(source.requests) == 1
    assert store.get(download.id).resumable is False


def _if_range(request: Request) -> bool:
    return "If-Range" in request.headers


def test_a_weak_etag_sends_no_date_in_if_range(store: Store, tmp_path: Path) -> None:
    """RFC 9110 §13.1.5: with an entity tag, no date in If-Range; a weak tag is never sent.
    Apache answers a date for a file modified within the last second by a 200 (with the
    same weak tag): not asked, it serves each range once."""
    data = data_of(6 * WINDOW)
    source = ScriptedSource(
        data, etag='W/"young"', last_modified=DATE,
        rules=[Rule(match=_if_range, whole=True, times=None)],
    )
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == data
    assert not any(_if_range(r) for r in source.requests)
    assert sum(asked(r, len(data)) for r in source.requests) == len(data)
    assert not transfer.notices


def test_a_200_to_if_range_with_the_same_validators_goes_on_as_one_stream(
    store: Store, tmp_path: Path
) -> None:
    """A server that answers every request with ``If-Range: <Last-Modified>`` by a 200
    carrying the same validators (Apache without ETags, for a file modified within the
    last second: it takes the date as weak). The file did not change: one stream, no
    failure, never a splice."""
    data = data_of(6 * WINDOW)
    source = ScriptedSource(
        data, etag=None, last_modified=DATE,
        rules=[Rule(match=_if_range, whole=True, times=None)],
    )
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == data
    assert any("conditionally" in n for n in transfer.notices), transfer.notices
    assert not any("changed" in n for n in transfer.notices), transfer.notices
    assert sum(r.status == 200 for r in source.requests) == 1  # one 200, then one stream


def test_a_200_to_if_range_with_other_validators_is_a_change(
    store: Store, tmp_path: Path
) -> None:
    old, new = data_of(6 * WINDOW, seed=1), data_of(6 * WINDOW, seed=2)  # the same size
    source = ScriptedSource(
        old, etag=None, last_modified=DATE,
        rules=[Rule(match=_if_range, change=(new, None), change_modified="Tue, 01 Dec 2026 "
                    "11:00:05 GMT", whole=True)],
    )
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == new
    assert any("changed" in n and "restarting from zero" in n for n in transfer.notices)
