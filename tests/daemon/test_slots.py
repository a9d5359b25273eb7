"""The scheduler's counting core (daemon/slots.py), against a model of what it must keep:
never more big downloads than ``max_active``, never more small ones than ``max_small``,
never one id in both lanes, and a small download never waiting while a slot fits it."""

from __future__ import annotations

import pytest
from freight.daemon.slots import Lane, Slots
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

IDS = st.integers(0, 40)


class SlotsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.slots = Slots(3, 2)
        self.held: dict[int, bool] = {}  # id -> known small
        self.lowered = False  # caps were lowered below what runs: the lanes may be over

    @rule(download_id=IDS, small=st.booleans())
    def admit(self, download_id: int, small: bool) -> None:
        if download_id in self.held:
            with pytest.raises(ValueError):
                self.slots.admit(download_id, small=small)
            return
        free_big, free_small = self.slots.free_big, self.slots.free_small
        lane = self.slots.admit(download_id, small=small)
        if small and free_small:
            assert lane is Lane.SMALL
        elif free_big:
            assert lane is Lane.BIG
        else:
            assert lane is None  # no slot for it: it stays queued
        if lane is not None:
            self.held[download_id] = small

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def promote(self, data: st.DataObject) -> None:
        download_id = data.draw(st.sampled_from(sorted(self.held)))
        before = self.slots.lane(download_id)
        free_small = self.slots.free_small
        freed = self.slots.promote(download_id)
        assert freed == (before is Lane.BIG and free_small > 0)
        self.held[download_id] = True

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        download_id = data.draw(st.sampled_from(sorted(self.held)))
        assert self.slots.release(download_id) is not None
        del self.held[download_id]
        assert self.slots.lane(download_id) is None
        assert self.slots.release(download_id) is None  # twice: nothing more to free

    @rule(max_active=st.integers(1, 5), max_small=st.integers(0, 4))
    def set_limits(self, max_active: int, max_small: int) -> None:
        self.slots.set_limits(max_active, max_small)
        big, small = self.slots.counts()
        self.lowered = big > max_active or small > max_small

    @invariant()
    def lanes_within_caps_and_disjoint(self) -> None:
        big, small = self.slots.counts()
        assert big + small == len(self.held)
        lanes = [self.slots.lane(i) for i in self.held]
        assert None not in lanes
        assert lanes.count(Lane.BIG) == big and lanes.count(Lane.SMALL) == small
        if not self.lowered:
            assert big <= self.slots.max_active
            assert small <= self.slots.max_small

    @invariant()
    def a_known_small_in_a_big_slot_only_while_the_small_lane_is_full(self) -> None:
        waiting = [i for i, small in self.held.items() if small and
                   self.slots.lane(i) is Lane.BIG]
        if waiting:
            assert self.slots.free_small == 0


TestSlots = SlotsMachine.TestCase


def test_a_promotion_frees_a_big_slot_and_a_full_small_lane_defers_it() -> None:
    slots = Slots(max_active=1, max_small=1)
    assert slots.admit(1, small=False) is Lane.BIG
    assert slots.admit(2, small=False) is None  # the big lane is full
    assert slots.promote(1) is True  # its probe showed it small
    assert slots.admit(2, small=False) is Lane.BIG
    assert slots.promote(2) is False  # the small lane is full: 2 keeps its big slot
    assert slots.counts() == (1, 1)
    assert slots.release(1) is Lane.SMALL
    assert slots.lane(2) is Lane.SMALL  # the waiting promotion took the freed small slot
    assert slots.free_big == 1
