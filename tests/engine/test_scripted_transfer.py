"""A real Transfer (real SQLite store, real .part file, real threads) against a ScriptedSource:
the rules of the engine, driven request by request, without a socket."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from freight.config import EngineSettings
from freight.engine.http.scripted import Rule, ScriptedSource
from freight.engine.transfer import Transfer
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Store

from engine.scripted_support import FAST, URL, data_of


def start(store: Store, folder: Path) -> Download:
    folder.mkdir(exist_ok=True)
    return store.add(URL, str(folder), state=DownloadState.ACTIVE)


def run(store: Store, download: Download, source: ScriptedSource, **settings: Any) -> Transfer:
    moves: list[tuple[DownloadState, bool]] = []
    keeper = StateKeeper(store, lambda d, moved: moves.append((d.state, moved)))
    transfer = Transfer(store, download.id, EngineSettings(**{**FAST, **settings}),
                        keeper=keeper, source=source)
    transfer.moves = moves  # type: ignore[attr-defined]
    thread = threading.Thread(target=transfer.run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the transfer did not end"
    return transfer


def on_disk(store: Store, download: Download) -> bytes:
    done = store.get(download.id)
    assert done.state is DownloadState.COMPLETED, (done.state, done.error)
    assert done.path is not None and not os.path.exists(str(done.part_path))
    return Path(done.path).read_bytes()


def test_a_segmented_download(store: Store, tmp_path: Path) -> None:
    data = data_of(300_000)
    source = ScriptedSource(data, headers={"Content-Disposition": 'attachment; filename="a.bin"'})
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == data
    assert store.get(download.id).name == "a.bin"
    ranged = [r for r in source.requests if r.start > 0]
    assert ranged, "the file was not split"
    assert all(r.headers["If-Range"] == '"v1"' for r in ranged)  # RFC 9110 §13.1.5
    # The probe's row change is reported as a change, completion as a move.
    assert transfer.moves[0] == (DownloadState.ACTIVE, False)  # type: ignore[attr-defined]
    assert transfer.moves[-1] == (DownloadState.COMPLETED, True)  # type: ignore[attr-defined]
    progress = transfer.progress()
    assert progress.done == progress.size == len(data)


def test_a_dropped_connection_is_retried_and_continued(store: Store, tmp_path: Path) -> None:
    data = data_of(200_000)
    source = ScriptedSource(data, rules=[
        Rule(match=lambda r: r.start > 0, drop_after=10_000, times=2),
    ])
    download = start(store, tmp_path / "dl")
    run(store, download, source)
    assert on_disk(store, download) == data
    assert source.rules[0].times == 0  # both drops happened


def test_a_200_to_a_range_restarts_as_one_stream(store: Store, tmp_path: Path) -> None:
    data = data_of(200_000)
    # No validators: a 200 to a range means the server cannot split, not that it changed.
    source = ScriptedSource(data, etag=None, rules=[Rule(match=lambda r: r.start > 0, whole=True)])
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == data
    assert any("restarting from zero" in n for n in transfer.notices)
    after = source.requests[[i for i, r in enumerate(source.requests) if r.start > 0][0] + 1:]
    assert after and all(r.start == 0 and r.end is None for r in after)  # one stream


def test_a_wrong_range_restarts_as_one_stream(store: Store, tmp_path: Path) -> None:
    data = data_of(200_000)
    source = ScriptedSource(data, rules=[Rule(match=lambda r: r.start > 0, shift=100)])
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == data
    assert any("restarting from zero" in n for n in transfer.notices)


def test_a_changed_validator_restarts_from_zero(store: Store, tmp_path: Path) -> None:
    old, new = data_of(200_000, seed=1), data_of(180_000, seed=2)
    source = ScriptedSource(old, rules=[
        Rule(match=lambda r: r.start > 0, change=(new, '"v2"')),
    ])
    download = start(store, tmp_path / "dl")
    transfer = run(store, download, source)
    assert on_disk(store, download) == new  # never a splice of the two versions
    assert any("changed" in n and "restarting from zero" in n for n in transfer.notices)
    assert store.get(download.id).etag == '"v2"'


def test_a_403_on_resume_needs_a_refresh_and_keeps_the_data(
    store: Store, tmp_path: Path
) -> None:
    data = data_of(200_000)
    download = start(store, tmp_path / "dl")
    holder: list[Transfer] = []

    def pause() -> None:
        holder[0].stop("pause")

    # One connection: it drops after 50 000 bytes; asking for the rest, the user pauses.
    source = ScriptedSource(data, rules=[
        Rule(match=lambda r: r.start == 0, drop_after=50_000),
        Rule(match=lambda r: r.start > 0, before=pause),
    ])
    settings = EngineSettings(**{**FAST, "connections": 1, "min_split_size": 1 << 30})
    transfer = Transfer(store, download.id, settings, source=source)
    holder.append(transfer)
    paused = transfer.run()
    assert paused.state is DownloadState.PAUSED, (paused.state, paused.error)
    kept = store.get(download.id)
    assert 0 < kept.done < len(data)

    store.set_state(download.id, DownloadState.ACTIVE)
    expired = ScriptedSource(data, rules=[Rule(status=403, times=None)])
    run(store, download, expired)
    after = store.get(download.id)
    assert after.state is DownloadState.NEEDS_REFRESH and after.error_kind == "needs_refresh"
    assert all(r.start > 0 for r in expired.requests)  # a resume, not a new probe
    part = Path(str(after.part_path)).read_bytes()
    assert part[: kept.done] == data[: kept.done]  # the data is kept


def test_a_zero_byte_file(store: Store, tmp_path: Path) -> None:
    download = start(store, tmp_path / "dl")
    run(store, download, ScriptedSource(b""))
    assert on_disk(store, download) == b""


def test_throttling_while_others_work_retires_connections(
    store: Store, tmp_path: Path
) -> None:
    data = data_of(400_000)
    source = ScriptedSource(data, rules=[
        Rule(match=lambda r: r.start > 0, status=503, times=2, headers={"Retry-After": "0"}),
    ])
    download = start(store, tmp_path / "dl")
    run(store, download, source)
    assert on_disk(store, download) == data
    assert source.rules[0].times == 0  # both 503s were served
