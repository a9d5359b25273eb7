"""The schedule's sans-I/O core (freight/timetable.py): minutes of a DST-free local day in, the
rate, the queue's answer and the next change out; windows may cross midnight."""

from __future__ import annotations

import pytest
from freight import config
from freight.errors import InputError
from freight.timetable import DAY, RateWindow, Timetable, Window, combine
from hypothesis import given
from hypothesis import strategies as st

minutes = st.integers(0, DAY - 1)


@st.composite
def disjoint_windows(draw: st.DrawFn, most: int = 4) -> list[Window]:
    """Up to ``most`` windows cut from sorted distinct edges around the clock; the last may
    wrap past midnight (the cut between two edges is a gap or a window)."""
    edges = sorted(draw(st.sets(st.integers(0, DAY - 1), min_size=2, max_size=2 * most)))
    shift = draw(st.integers(0, DAY - 1))  # turns the edges round: windows cross midnight
    pairs = list(zip(edges[0::2], edges[1::2], strict=False))
    return [Window((a + shift) % DAY, (b + shift) % DAY or DAY) for a, b in pairs]


rates = st.one_of(st.none(), st.integers(1, 1 << 40))


@st.composite
def tables(draw: st.DrawFn) -> Timetable:
    limits = draw(disjoint_windows())
    queue = draw(st.one_of(st.just([]), disjoint_windows()))
    return Timetable(tuple(RateWindow(w, draw(rates)) for w in limits), tuple(queue))


def brute_covers(window: Window, minute: int) -> bool:
    """Walk the window minute by minute from its start."""
    length = (window.end - window.start) % DAY or DAY
    return any((window.start + k) % DAY == minute for k in range(length))


@given(disjoint_windows(most=1), minutes)
def test_a_window_covers_its_minutes_across_midnight(windows: list[Window], minute: int) -> None:
    window = windows[0]
    assert window.covers(minute) == brute_covers(window, minute)


@given(tables(), minutes)
def test_next_change_is_the_first_minute_that_differs(table: Timetable, minute: int) -> None:
    now = table.state_at(minute)
    delta = table.next_change(minute)
    steps = range(1, (delta or DAY) + 1)
    same = [table.state_at(minute + k) == now for k in steps]
    if delta is None:
        assert all(same)
    else:
        assert 1 <= delta <= DAY
        assert all(same[:-1]) and not same[-1]


@given(tables(), minutes, st.sampled_from(["rate_at", "queue_runs"]))
def test_next_change_of_one_answer(table: Timetable, minute: int, name: str) -> None:
    answer = getattr(table, name)
    delta = table.next_change(minute, answer)
    same = [answer(minute + k) == answer(minute) for k in range(1, (delta or DAY) + 1)]
    assert all(same) if delta is None else (all(same[:-1]) and not same[-1])


@given(tables(), minutes)
def test_the_rate_is_the_covering_windows(table: Timetable, minute: int) -> None:
    covering = [w for w in table.limits if brute_covers(w.window, minute)]
    assert len(covering) <= 1
    assert table.rate_at(minute) == (covering[0].rate if covering else None)
    assert table.queue_runs(minute) == (
        not table.queue or any(brute_covers(w, minute) for w in table.queue))


@given(tables())
def test_stored_text_reads_back_the_same(table: Timetable) -> None:
    settings = {"schedule_limits": [w.text() for w in table.limits],
                "schedule_queue": [w.text() for w in table.queue]}
    checked = {name: config.validate_setting(name, value) for name, value in settings.items()}
    again = Timetable.from_settings(checked)
    assert set(again.limits) == set(table.limits) and set(again.queue) == set(table.queue)


@given(st.one_of(st.none(), st.integers(1, 10**9)), st.one_of(st.none(), st.integers(1, 10**9)))
def test_the_users_limit_stays_the_cap(user: int | None, window: int | None) -> None:
    rate = combine(user, window)
    if user is not None:
        assert rate is not None and rate <= user
    if window is not None:
        assert rate is not None and rate <= window
    assert rate in (user, window)


def test_midnight_example() -> None:
    table = Timetable.from_settings({
        "schedule_limits": config.validate_setting("schedule_limits", ["09:00-18:00=1M"]),
        "schedule_queue": config.validate_setting("schedule_queue", ["22:00-07:00"]),
    })
    assert table.state_at(8 * 60 + 59) == (None, False)
    assert table.state_at(9 * 60) == (1024 * 1024, False)
    assert table.state_at(23 * 60) == (None, True)
    assert table.state_at(0) == (None, True)
    assert table.next_change(23 * 60) == 8 * 60  # 07:00, across midnight
    assert Timetable().next_change(0) is None


@pytest.mark.parametrize(("name", "value", "words"), [
    ("schedule_limits", ["25:00-01:00=1M"], "not a time of day: '25:00'"),
    ("schedule_limits", ["09:60-10:00=1M"], "not a time of day: '09:60'"),
    ("schedule_limits", ["01:00-02:00=-5M"], "a rate must be positive: '-5M'"),
    ("schedule_limits", ["01:00-02:00=0"], "a rate must be positive"),
    ("schedule_limits", ["01:00-02:00"], "use START-END=RATE"),
    ("schedule_limits", ["09:00-18:00=1M", "17:00-19:00=2M"],
     "windows 09:00-18:00 and 17:00-19:00 overlap"),
    ("schedule_limits", ["23:00-02:00=1M", "01:00-01:30=none"], "overlap"),
    ("schedule_queue", ["07:00-07:00"], "is empty"),
    ("schedule_queue", ["24:00-01:00"], "not a time of day: '24:00'"),
    ("schedule_queue", ["0100-0700"], "not a time of day: '0100'"),
    ("schedule_queue", ["01:00"], "use START-END"),
    ("schedule_queue", ["22:00-06:00", "05:00-08:00"], "overlap"),
])
def test_bad_windows_are_refused_with_the_reason(name: str, value: list[str],
                                                 words: str) -> None:
    with pytest.raises(InputError, match="setting '" + name) as caught:
        config.validate_setting(name, value)
    assert words in str(caught.value)


def test_windows_are_normalised_and_sorted() -> None:
    assert config.validate_setting("schedule_limits", ["18:00-24:00=none", "9:00-18:00=1M"]) \
        == ["09:00-18:00=1048576", "18:00-24:00=none"]
    assert config.validate_setting("schedule_queue", ["22:00-6:00"]) == ["22:00-06:00"]
