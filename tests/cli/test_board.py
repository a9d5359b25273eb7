"""`freight watch`'s board (freight.cli.board) and the filter flags it shares with `ls`: for any
set of downloads and any terminal size the frame fits, active downloads come first, and the
order is the one documented."""

from __future__ import annotations

from typing import Any

import pytest
from freight.cli import entry
from freight.cli.board import GROUPS, frame, ordered
from freight.cli.filters import Filter
from freight.models import DownloadState
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

STATES = [s.value for s in DownloadState if s is not DownloadState.REMOVED]
NAMES = st.text(st.characters(codec="utf-8"), max_size=40)  # wide, combining, controls


@st.composite
def downloads(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 80))
    positions = draw(st.permutations(range(n)))
    out = []
    for i in range(n):
        size = draw(st.one_of(st.none(), st.integers(1, 10**12)))
        out.append({
            "id": i + 1, "state": draw(st.sampled_from(STATES)), "name": draw(NAMES),
            "url": f"https://example.com/{i}", "size": size,
            "done": draw(st.integers(0, size or 10**9)), "speed": draw(st.integers(0, 10**9)),
            "eta": draw(st.one_of(st.none(), st.floats(0, 10**6))), "position": positions[i],
            "finished_at": draw(st.one_of(st.none(), st.floats(0, 2e9))),
            "error": draw(st.one_of(st.none(), NAMES)),
        })
    return out


def shown_ids(lines: list[str]) -> list[int]:
    ids = []
    for line in lines[1:]:
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if first.isdigit():
            ids.append(int(first))
    return ids


@given(rows=downloads(), height=st.integers(0, 70), width=st.integers(0, 200),
       limit=st.one_of(st.none(), st.integers(1, 90)))
def test_the_frame_always_fits_the_terminal(rows, height, width, limit) -> None:
    lines = frame(rows, height, width, limit)
    assert len(lines) <= height
    assert all(cell_len(line) <= width for line in lines)
    assert all("\x1b" not in line and "\n" not in line for line in lines)


@given(rows=downloads(), height=st.integers(3, 70), width=st.integers(40, 200))
def test_active_first_and_all_of_them_when_they_fit(rows, height, width) -> None:
    lines = frame(rows, height, width)
    ids = shown_ids(lines)
    by_id = {d["id"]: d for d in rows}
    active = [d["id"] for d in rows if d["state"] == "active"]
    if len(active) <= height - 2:  # header and the "… and N more" line
        assert set(active) <= set(ids)
    # Shown in group order; within queued, in queue order; completed newest first.
    groups = [next(i for i, g in enumerate(GROUPS) if by_id[i_]["state"] in g) for i_ in ids]
    assert groups == sorted(groups)
    queued = [by_id[i]["position"] for i in ids if by_id[i]["state"] == "queued"]
    assert queued == sorted(queued)
    done = [by_id[i]["finished_at"] or 0 for i in ids if by_id[i]["state"] == "completed"]
    assert done == sorted(done, reverse=True)
    # Whatever is not shown is counted, by state, on the last line.
    hidden = len(rows) - len(ids)
    if hidden:
        assert lines[-1].startswith(f"… and {hidden} more") or cell_len(lines[-1]) == width
    else:
        assert len(ids) == len(rows)


def test_sixty_downloads_in_twenty_rows() -> None:
    rows = (
        [{"id": i, "state": "completed", "position": i, "finished_at": i, "done": 5, "size": 5,
          "name": f"old-{i}.bin"} for i in range(1, 13)]
        + [{"id": i, "state": "queued", "position": i, "done": 0, "name": f"q-{i}.bin"}
           for i in range(13, 57)]
        + [{"id": i, "state": "active", "position": i, "done": 1, "size": 9, "speed": 100,
            "eta": 3, "name": f"now-{i}.bin"} for i in range(57, 60)]
        + [{"id": 60, "state": "needs_refresh", "position": 60, "done": 1, "name": "exp.bin",
            "error": "HTTP 403\x1b[2J"}]
    )
    lines = frame(rows, 20, 80)
    assert len(lines) == 20
    assert lines[0].split() == ["ID", "STATE", "DONE", "SIZE", "SPEED", "ETA", "NAME"]
    assert shown_ids(lines) == [57, 58, 59, *range(13, 28)]
    assert lines[-1] == "… and 42 more (queued 29, needs refresh 1, completed 12)"
    # --limit keeps fewer rows and counts the rest.
    limited = frame(rows, 20, 80, limit=2)
    assert shown_ids(limited) == [57, 58] and limited[-1].startswith("… and 58 more")
    # Text from outside is escaped before it is measured.
    assert "\\x1b[2J" in frame(rows[-1:], 5, 120)[1]


def test_ordered_puts_waiting_for_the_user_between_queued_and_completed() -> None:
    rows = [{"id": 1, "state": "completed", "position": 0, "finished_at": 1},
            {"id": 2, "state": "failed", "position": 1},
            {"id": 3, "state": "queued", "position": 9},
            {"id": 4, "state": "paused", "position": 2},
            {"id": 5, "state": "active", "position": 8},
            {"id": 6, "state": "completed", "position": 3, "finished_at": 5}]
    assert [d["id"] for d in ordered(rows)] == [5, 3, 2, 4, 6, 1]


@pytest.mark.parametrize("command", ["ls", "watch"])
def test_ls_and_watch_parse_the_same_filters(command: str) -> None:
    args = entry.build_parser(command).parse_args(
        [command, "--active", "--state", "failed", "--limit", "5"])
    assert Filter.from_args(args) == Filter(frozenset({"active", "failed"}), 5)
    assert Filter.from_args(entry.build_parser(command).parse_args([command])) == Filter()
    rows = [{"id": i, "state": s} for i, s in enumerate(["active", "queued", "failed"] * 3)]
    assert [d["id"] for d in Filter(frozenset({"failed"}), 2).select(rows)] == [2, 5]


@pytest.mark.parametrize("bad", [["--limit", "0"], ["--limit", "x"], ["--state", "bogus"]])
def test_a_bad_filter_is_a_usage_error(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        entry.build_parser("watch").parse_args(["watch", *bad])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
