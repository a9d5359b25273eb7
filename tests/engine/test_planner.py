"""The segment planner, exercised exhaustively without sockets (hypothesis).

A model follows every byte: which worker claimed it, whether it was committed. Whatever the
order of assign / claim / commit / release / split, the planner's pieces must tile the file
exactly once, recorded progress must be exactly the committed bytes, and a snapshot must
restore to the same plan.
"""

from __future__ import annotations

import copy
import random

import pytest
from freight.engine.planner import Planner, PlannerError
from freight.models import Segment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)


def check_tiling(planner: Planner) -> list[Segment]:
    segments = planner.snapshot()
    at = 0
    for s in segments:
        assert s.start == at, f"gap or overlap at {at}: {segments}"
        assert s.start <= s.pos <= s.end
        assert s.end > s.start
        at = s.end
    assert at == planner.size
    return segments


class PlannerMachine(RuleBasedStateMachine):
    """Workers race for pieces; the model knows every byte's fate."""

    workers = Bundle("workers")

    @initialize(size=st.integers(0, 4000), min_split=st.integers(1, 600))
    def start(self, size: int, min_split: int) -> None:
        self.planner = Planner(size, min_split)
        self.size = size
        self.committed = bytearray(size)  # 1 once a byte is committed
        self.claimed_by: list[int | None] = [None] * size  # claimed, not yet committed
        # worker -> [piece_id, next claim offset, next commit offset]
        self.active: dict[int, list[int]] = {}
        self.next_worker = 0

    @rule(target=workers)
    def assign(self):  # type: ignore[no-untyped-def]
        wid = self.next_worker
        self.next_worker += 1
        expected = self.planner.has_work()
        got = self.planner.assign(wid)
        assert (got is not None) == expected, "has_work() disagrees with assign()"
        if got is None:
            return multiple()
        assert 0 <= got.start < got.end <= self.size
        # A new assignment never starts on a committed or claimed byte.
        assert not self.committed[got.start]
        assert self.claimed_by[got.start] is None
        self.active[wid] = [got.piece_id, got.start, got.start]
        return wid

    @rule(wid=workers, n=st.integers(0, 900))
    def claim(self, wid: int, n: int) -> None:
        if wid not in self.active:
            return
        piece, at, _ = self.active[wid]
        allowed = self.planner.claim(piece, n)
        assert 0 <= allowed <= n
        for b in range(at, at + allowed):
            assert not self.committed[b], f"byte {b} handed out after it was committed"
            assert self.claimed_by[b] is None, f"byte {b} claimed by two workers"
            self.claimed_by[b] = wid
        self.active[wid][1] = at + allowed
        assert at + allowed <= self.planner.end_of(piece)

    @rule(wid=workers, fraction=st.floats(0, 1))
    def commit(self, wid: int, fraction: float) -> None:
        if wid not in self.active:
            return
        piece, claimed, pos = self.active[wid]
        k = int((claimed - pos) * fraction)
        self.planner.commit(piece, k)
        for b in range(pos, pos + k):
            assert self.claimed_by[b] == wid
            assert not self.committed[b], f"byte {b} committed twice"
            self.committed[b] = 1
            self.claimed_by[b] = None
        self.active[wid][2] = pos + k

    @rule(wid=consumes(workers))
    def release(self, wid: int) -> None:
        if wid not in self.active:
            return
        piece, _, _ = self.active.pop(wid)
        self.planner.release(piece)
        self.claimed_by = [None if w == wid else w for w in self.claimed_by]

    @rule(wid=workers)
    def over_commit_is_refused(self, wid: int) -> None:
        if wid not in self.active:
            return
        piece, claimed, pos = self.active[wid]
        with pytest.raises(PlannerError):
            self.planner.commit(piece, claimed - pos + 1)

    @invariant()
    def tiles_exactly_once(self) -> None:
        if not hasattr(self, "planner"):
            return
        segments = check_tiling(self.planner)
        # Recorded progress is exactly the committed bytes: never more, never elsewhere.
        recorded = bytearray(self.size)
        for s in segments:
            recorded[s.start : s.pos] = b"\x01" * (s.pos - s.start)
        assert recorded == self.committed
        assert self.planner.done == sum(self.committed)
        assert self.planner.complete == (sum(self.committed) == self.size)
        assert self.planner.owners == len(self.active)

    @invariant()
    def snapshot_round_trips(self) -> None:
        if not hasattr(self, "planner"):
            return
        segments = self.planner.snapshot()
        again = Planner(self.size, self.planner.min_split, copy.deepcopy(segments))
        assert again.snapshot() == segments
        assert again.done == self.planner.done
        assert again.complete == self.planner.complete
        assert again.restored == (self.size > 0)
        assert again.owners == 0


TestPlannerMachine = PlannerMachine.TestCase
TestPlannerMachine.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 20_000),
    min_split=st.integers(1, 3000),
    workers=st.integers(1, 9),
    seed=st.integers(0, 2**32),
)
def test_a_random_schedule_always_completes(size, min_split, workers, seed):
    """Workers read random amounts, fail at random; the file ends complete, each byte right.

    The schedule comes from a seeded generator (drawing every step through hypothesis makes
    long schedules overrun its buffer); a failure prints the seed, which replays it.
    """
    rng = random.Random(seed)
    source = bytes((i * 7 + 3) % 251 for i in range(size))
    out = bytearray(size)
    written_committed = bytearray(size)
    planner = Planner(size, min_split)
    jobs: dict[int, list[int]] = {}  # worker -> [piece, offset]
    next_id = 0
    for _step in range(20_000):
        if planner.complete:
            break
        # Fill free slots.
        while len(jobs) < workers:
            got = planner.assign(next_id)
            if got is None:
                break
            jobs[next_id] = [got.piece_id, got.start]
            next_id += 1
        assert jobs, "work is left but no worker could get any"
        wid = rng.choice(sorted(jobs))
        piece, offset = jobs[wid]
        action = rng.randrange(10)
        if action == 0:  # the connection failed: give the piece back
            planner.release(piece)
            del jobs[wid]
            continue
        n = rng.randint(1, 2500)
        allowed = planner.claim(piece, n)
        # "write" what the server would send at that offset
        out[offset : offset + allowed] = source[offset : offset + allowed]
        planner.commit(piece, allowed)
        assert not any(written_committed[offset : offset + allowed]), "committed twice"
        written_committed[offset : offset + allowed] = b"\x01" * allowed
        offset += allowed
        jobs[wid][1] = offset
        if allowed < n or offset >= planner.end_of(piece):
            planner.release(piece)
            del jobs[wid]
    assert planner.complete, "the schedule did not finish"
    assert bytes(out) == source
    assert planner.done == size
    assert all(written_committed)
    check_tiling(planner)


def test_split_takes_the_second_half_of_the_largest_remainder():
    planner = Planner(1000, 100)
    a = planner.assign(0)
    assert (a.start, a.end) == (0, 1000)
    assert planner.claim(a.piece_id, 200) == 200
    planner.commit(a.piece_id, 200)
    b = planner.assign(1)
    assert b is not None
    assert (b.start, b.end) == (600, 1000)  # 200 + 800 // 2
    assert planner.end_of(a.piece_id) == 600
    # The first owner reads past its new end: it may write only up to 600.
    assert planner.claim(a.piece_id, 1000) == 400


def test_no_split_below_twice_the_minimum():
    planner = Planner(399, 200)
    planner.assign(0)
    assert planner.assign(1) is None
    assert not planner.has_work()


def test_stored_segments_that_do_not_tile_are_refused():
    bad = [Segment(0, 10, 5), Segment(12, 20, 12)]
    planner = Planner(20, 4, bad)
    assert not planner.restored
    assert planner.snapshot() == [Segment(0, 20, 0)]
    beyond = [Segment(0, 10, 11), Segment(10, 20, 10)]
    assert not Planner(20, 4, beyond).restored
    short = [Segment(0, 10, 10)]
    assert not Planner(20, 4, short).restored


def test_bad_calls_raise():
    with pytest.raises(PlannerError):
        Planner(-1, 1)
    with pytest.raises(PlannerError):
        Planner(10, 0)
    planner = Planner(10, 1)
    a = planner.assign(0)
    with pytest.raises(PlannerError):
        planner.assign(0)  # one piece per worker
    with pytest.raises(PlannerError):
        planner.claim(a.piece_id, -1)
    planner.release(a.piece_id)
    with pytest.raises(PlannerError):
        planner.claim(a.piece_id, 1)  # no owner any more
    with pytest.raises(PlannerError):
        planner.end_of(999)


def test_zero_byte_file_is_complete_at_once():
    planner = Planner(0, 1)
    assert planner.complete
    assert planner.assign(0) is None
    assert planner.snapshot() == []
