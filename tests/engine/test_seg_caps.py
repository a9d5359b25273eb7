"""Host caps (issue 12): a cap lowered by 429/503 recovers after a quiet period, and a
download without a free slot is woken by the release of one instead of spinning. Sans-I/O:
the clock is injected."""

from __future__ import annotations

import threading

from freight.engine.limits import HostCaps
from hypothesis import given, settings
from hypothesis import strategies as st

H = "files.test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_429s_does_not_lower_the_cap_for_good():
    clock = Clock()
    caps = HostCaps(16, clock=clock, recover_after=10)
    for _ in range(8):
        assert caps.acquire(H)
    for _ in range(8):  # a burst of 429s
        caps.lower(H)
    assert caps.cap(H) == 1
    clock.now += 9.9
    assert caps.cap(H) == 1  # not quiet for long enough yet
    clock.now += 0.1
    assert caps.cap(H) == 2
    clock.now += 10
    assert caps.cap(H) == 4
    clock.now += 1000  # a long quiet time: all the way back, never beyond
    assert caps.cap(H) == 16


def test_a_new_push_back_starts_the_quiet_period_again():
    clock = Clock()
    caps = HostCaps(8, clock=clock, recover_after=10)
    for _ in range(4):
        caps.acquire(H)
    assert caps.lower(H) == 3
    clock.now += 8
    assert caps.lower(H) == 2  # the server still objects
    clock.now += 8
    assert caps.cap(H) == 2  # 16 s after the first, 8 after the last: not yet
    clock.now += 2
    assert caps.cap(H) == 4


@settings(max_examples=300, deadline=None)
@given(
    default=st.integers(1, 64),
    steps=st.lists(
        st.tuples(st.sampled_from(["acquire", "force", "release", "lower", "wait"]),
                  st.floats(0, 30)),
        max_size=60,
    ),
)
def test_caps_stay_in_bounds_and_always_recover(default, steps):
    clock = Clock()
    caps = HostCaps(default, clock=clock, recover_after=10)
    held = 0
    last_push = None
    for action, seconds in steps:
        if action == "acquire":
            cap = caps.cap(H)
            ok = caps.acquire(H)
            assert ok == (held < cap)
            held += ok
        elif action == "force":
            assert caps.acquire(H, force=True)
            held += 1
        elif action == "release" and held:
            caps.release(H)
            held -= 1
        elif action == "lower":
            before = caps.cap(H)
            assert 1 <= caps.lower(H) <= before
            last_push = clock.now
        else:
            clock.now += seconds
        assert 1 <= caps.cap(H) <= default
        assert caps.active(H) == held
        if last_push is None:
            assert caps.cap(H) == default
    clock.now += 10 * (default.bit_length() + 1)
    assert caps.cap(H) == default


def test_a_release_wakes_the_download_waiting_for_a_slot():
    caps = HostCaps(1)
    assert caps.acquire(H)
    woken = threading.Event()
    assert not caps.acquire(H, waiter=woken)
    assert not woken.is_set()
    caps.release(H)
    assert woken.is_set()
    assert caps.acquire(H)


def test_a_recovery_wakes_the_waiting_downloads_too():
    clock = Clock()
    caps = HostCaps(4, clock=clock, recover_after=10)
    caps.acquire(H)
    caps.acquire(H)
    caps.lower(H)  # cap 1, two running
    woken = threading.Event()
    assert not caps.acquire(H, waiter=woken)
    clock.now += 10
    caps.release(H)
    caps.release(H)
    assert woken.is_set() and caps.acquire(H) and caps.acquire(H)


def test_a_connection_over_the_cap_gives_its_slot_back():
    caps = HostCaps(4)
    for _ in range(4):
        caps.acquire(H)
    caps.lower(H)  # cap 3: one of the four must go
    assert caps.release_if_over(H)
    assert not caps.release_if_over(H)
    assert caps.active(H) == 3


@given(
    start=st.integers(1, 32),
    caps=st.lists(st.integers(1, 64), min_size=1, max_size=20),
)
def test_the_connection_count_recovers_with_the_cap_never_beyond(start, caps):
    from freight.engine.adaptive import ConnectionGoal

    goal = ConnectionGoal(start, 64, adaptive=False)
    wanted = goal.target
    for cap in caps:
        goal.lower(cap)
        assert 1 <= goal.target <= cap
    goal.recover(64)
    assert goal.target == wanted
    assert goal.recover(64) is None
