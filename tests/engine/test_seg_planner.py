"""The planner's windows (issue 12): a split never cuts into a window in flight, so the
server is never made to send a byte twice; on a slow-to-answer server a piece is split only
when a second connection ends it sooner. Explored with hypothesis, without sockets."""

from __future__ import annotations

import random

import pytest
from freight.engine.planner import (
    FIRST_WINDOW,
    Planner,
    PlannerError,
    window_size,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule


class WindowMachine(RuleBasedStateMachine):
    """Workers ask for windows, read them in pieces, fail; the model counts every byte the
    server is asked for and checks that none is asked for twice unless its reader failed."""

    @initialize(size=st.integers(0, 6000), min_split=st.integers(1, 700))
    def start(self, size: int, min_split: int) -> None:
        self.planner = Planner(size, min_split)
        self.size = size
        self.asked = [0] * size  # times each byte was asked of the server
        self.lost = [0] * size  # times a reader failed with the byte asked, unwritten
        self.committed = bytearray(size)
        # worker -> [piece, window start, window stop, next byte to read]
        self.active: dict[int, list[int]] = {}
        self.next_worker = 0

    @rule(lead=st.sampled_from([0.0, 0.5, 3.0]))
    def assign(self, lead: float) -> None:
        wid = self.next_worker
        self.next_worker += 1
        expected = self.planner.has_work(lead)
        before = {w: self.planner.end_of(job[0]) for w, job in self.active.items()}
        rates = {w: self.planner._piece(job[0]).rate for w, job in self.active.items()}
        got = self.planner.assign(wid, lead)
        assert (got is not None) == expected, "has_work() disagrees with assign()"
        if got is None:
            return
        for w, job in self.active.items():
            if self.planner.end_of(job[0]) < before[w]:  # w's piece was split
                left = before[w] - job[3]
                rate = rates[w]
                assert rate is None or lead == 0 or left > 2 * rate * lead, "split too late"
        self.active[wid] = [got.piece_id, got.start, got.start, got.start]

    @rule(data=st.data(), n=st.integers(1, 2000), rate=st.sampled_from([None, 100.0, 1000.0]))
    def window(self, data: st.DataObject, n: int, rate: float | None) -> None:
        if not self.active:
            return
        wid = data.draw(st.sampled_from(sorted(self.active)))
        job = self.active[wid]
        if job[3] < job[2]:
            return  # the window in flight is read to its end first
        span = self.planner.window(job[0], n, rate)
        if span is None:
            assert job[3] == self.planner.end_of(job[0])
            return
        start, stop = span
        assert start == job[3] and start < stop <= min(self.planner.end_of(job[0]), start + n)
        for b in range(start, stop):
            self.asked[b] += 1
        job[1], job[2] = start, stop

    @rule(data=st.data(), n=st.integers(1, 900))
    def read(self, data: st.DataObject, n: int) -> None:
        readers = sorted(w for w, job in self.active.items() if job[3] < job[2])
        if not readers:
            return
        wid = data.draw(st.sampled_from(readers))
        piece, _, stop, at = self.active[wid]
        n = min(n, stop - at)
        # A window in flight is never cut: every byte the server sends in it is kept.
        assert self.planner.claim(piece, n) == n
        self.planner.commit(piece, n)
        for b in range(at, at + n):
            assert not self.committed[b]
            self.committed[b] = 1
        self.active[wid][3] = at + n

    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        if not self.active:
            return
        wid = data.draw(st.sampled_from(sorted(self.active)))
        piece, _, stop, at = self.active.pop(wid)
        for b in range(at, stop):
            self.lost[b] += 1
        self.planner.release(piece)

    @precondition(lambda self: hasattr(self, "planner"))
    @invariant()
    def no_byte_is_asked_twice_unless_its_reader_failed(self) -> None:
        for b in range(self.size):
            assert self.asked[b] <= 1 + self.lost[b], f"byte {b} asked {self.asked[b]} times"

    @precondition(lambda self: hasattr(self, "planner"))
    @invariant()
    def windows_in_flight_stay_whole(self) -> None:
        spans = []
        for piece, _start, stop, at in self.active.values():
            assert self.planner.end_of(piece) >= stop, "a split cut into a window in flight"
            spans.append((at, stop))
        spans.sort()
        for (_, a_stop), (b_start, _) in zip(spans, spans[1:], strict=False):
            assert a_stop <= b_start, "two windows in flight overlap"


TestWindowMachine = WindowMachine.TestCase
TestWindowMachine.settings = settings(
    max_examples=150, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 50_000),
    min_split=st.integers(1, 4000),
    workers=st.integers(1, 12),
    seed=st.integers(0, 2**32),
)
def test_without_failures_every_byte_is_asked_for_exactly_once(size, min_split, workers, seed):
    """Workers join and read at random speeds with work stealing; with no failure the server
    is asked for each byte once: bytes served equal the file size exactly."""
    rng = random.Random(seed)
    planner = Planner(size, min_split)
    jobs: dict[int, list[int]] = {}  # worker -> [piece, next byte, window stop]
    asked = 0
    next_id = 0
    for _step in range(50_000):
        if planner.complete:
            break
        while len(jobs) < workers:
            got = planner.assign(next_id)
            if got is None:
                break
            jobs[next_id] = [got.piece_id, got.start, got.start]
            next_id += 1
        wid = rng.choice(sorted(jobs))
        piece, at, stop = jobs[wid]
        if at == stop:
            span = planner.window(piece, rng.randint(1, 3 * min_split))
            if span is None:
                planner.release(piece)
                del jobs[wid]
                continue
            assert span[0] == at
            asked += span[1] - span[0]
            jobs[wid][2] = stop = span[1]
        n = min(rng.randint(1, 1500), stop - at)
        assert planner.claim(piece, n) == n
        planner.commit(piece, n)
        jobs[wid][1] = at + n
    assert planner.complete
    assert asked == size


def test_a_split_lands_beyond_the_window_in_flight():
    planner = Planner(1000, 100)
    a = planner.assign(0)
    assert planner.window(a.piece_id, 700) == (0, 700)
    b = planner.assign(1)
    assert b is not None and (b.start, b.end) == (700, 1000)  # not at 500: that is in flight
    assert planner.end_of(a.piece_id) == 700
    # [700, 1000) is not in flight yet: it is split in half, as before windows.
    c = planner.assign(2)
    assert c is not None and (c.start, c.end) == (850, 1000)
    planner.window(b.piece_id, 150)
    planner.window(c.piece_id, 150)
    assert not planner.has_work()  # everything is in flight


def test_the_whole_piece_in_flight_is_never_split():
    planner = Planner(1000, 10)
    a = planner.assign(0)
    planner.window(a.piece_id, 1000)
    assert not planner.has_work()
    assert planner.assign(1) is None


def test_a_slow_server_does_not_split_what_ends_before_a_new_head():
    planner = Planner(10_000, 100)
    a = planner.assign(0)
    planner.window(a.piece_id, 1000, rate=1000.0)  # 1000 B/s: 10 s for the whole piece
    # A head takes 6 s: split, the piece ends after about 6 + 4.5 s, alone after 10 s.
    assert not planner.has_work(6.0) and planner.assign(1, 6.0) is None
    # A head takes 4 s: a second connection ends it sooner.
    b = planner.assign(1, 4.0)
    assert b is not None and b.start == 5000


def test_window_calls_are_checked():
    planner = Planner(100, 10)
    a = planner.assign(0)
    with pytest.raises(PlannerError):
        planner.window(a.piece_id, 0)
    planner.release(a.piece_id)
    with pytest.raises(PlannerError):
        planner.window(a.piece_id, 10)  # no owner


@given(
    rate=st.one_of(st.none(), st.floats(1, 1e10)),
    latency=st.floats(0, 30),
    min_split=st.integers(1, 64 << 20),
    share=st.integers(0, 1 << 40),
)
def test_window_sizes(rate, latency, min_split, share):
    n = window_size(rate, latency, min_split=min_split, share=share)
    assert n >= min_split
    if rate is None:
        assert n <= max(min_split, FIRST_WINDOW)
    else:
        # About a second (or eight head latencies) of throughput: few requests, short tails.
        assert n >= min(rate * max(1.0, 8 * latency), 1 << 30) - 1
        assert n <= max(min_split, rate * max(1.0, 8 * latency)) + 1
