"""Rules: a completion is recorded only from a state the transition table allows (active);
one that cannot complete is answered with its error while the others of its batch are
recorded; a recorded one keeps no progress records and carries what was learnt."""

from __future__ import annotations

from pathlib import Path

import pytest
from freight.errors import IllegalTransition, InputError, NotFound
from freight.models import Download, DownloadState, Segment
from freight.store import Store

S = DownloadState


def test_a_batch_records_the_active_and_answers_the_others_with_their_error(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "freight.db")
    folder = str(tmp_path)
    active = store.add("http://127.0.0.1/a", folder, state=S.ACTIVE, size=10)
    store.save_progress(active.id, [Segment(0, 10, 4)], 4)
    store.save_fast_progress(active.id, "boot", [Segment(0, 10, 6)], 6)
    queued = store.add("http://127.0.0.1/q", folder)
    removed = store.add("http://127.0.0.1/r", folder, state=S.REMOVED)
    done = store.add("http://127.0.0.1/d", folder, state=S.ACTIVE)
    store.complete(done.id, "d.bin", 3)
    before = {d.id: store.get(d.id) for d in (queued, removed, done)}

    answers = store.complete_many([
        (active.id, "a.bin", 10, {"final_url": "http://127.0.0.1/final", "etag": '"x"'}),
        (queued.id, "q.bin", 1, {}),
        (removed.id, "r.bin", 1, {}),
        (done.id, "again.bin", 1, {}),
        (999, "none.bin", 1, {}),
    ])

    recorded = answers[0]
    assert isinstance(recorded, Download)
    assert recorded == store.get(active.id)
    assert (recorded.state, recorded.name, recorded.size, recorded.done) == (
        S.COMPLETED, "a.bin", 10, 10)
    assert (recorded.final_url, recorded.etag) == ("http://127.0.0.1/final", '"x"')
    assert recorded.finished_at is not None and recorded.error is None
    assert store.load_segments(active.id) == []
    assert store.resume_segments(active.id, "boot") == []
    for answer, (old, new) in zip(answers[1:4], [
        (S.QUEUED, S.COMPLETED), (S.REMOVED, S.COMPLETED), (S.COMPLETED, S.COMPLETED),
    ], strict=True):
        assert isinstance(answer, IllegalTransition), answer
        assert (answer.data["state"], answer.data["wanted"]) == (old.value, new.value)
    assert isinstance(answers[4], NotFound)
    assert {i: store.get(i) for i in before} == before  # untouched


def test_a_completion_refuses_fields_it_does_not_record(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db")
    active = store.add("http://127.0.0.1/a", str(tmp_path), state=S.ACTIVE)
    for fields in ({"state": "completed"}, {"headers": {}}, {"nonsense": 1}):
        with pytest.raises(InputError):
            store.complete_many([(active.id, "a.bin", 1, fields)])
    assert store.get(active.id).state == S.ACTIVE
    with pytest.raises(IllegalTransition):
        store.complete(store.add("http://127.0.0.1/b", str(tmp_path)).id, "b.bin", 1)
