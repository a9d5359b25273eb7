"""The adaptive connection count (adaptive.py): fed made-up progress, so every decision is
exact; the end-to-end runs against throttled servers are in test_get.py and bench/."""

from __future__ import annotations

from freight.engine.adaptive import ConnectionGoal

MIB = 1024 * 1024


def feed(goal: ConnectionGoal, rates: list[float], t: float = 0.0, done: int = 0) -> list[str]:
    """One window per rate (bytes/s), each with every wanted connection running."""
    said = []
    goal.observe(t, done, goal.target, True)  # the first call starts the first window
    for rate in rates:
        t += goal.window
        done += int(rate * goal.window)
        msg = goal.observe(t, done, goal.target, True)
        if msg:
            said.append(msg)
    return said


def test_steps_up_while_each_step_pays_then_stays_at_the_ceiling():
    goal = ConnectionGoal(start=16, ceiling=64, window=0.125)
    said = feed(goal, [128 * MIB, 200 * MIB, 300 * MIB, 300 * MIB])
    assert goal.target == 64 and goal.frozen
    assert said == ["32 connections (at 134217728 B/s)", "64 connections (at 209715200 B/s)"]


def test_a_step_that_does_not_pay_is_taken_back():
    # A shared link: 32 connections get no more than 16 did.
    goal = ConnectionGoal(start=16, ceiling=32, window=0.125)
    said = feed(goal, [64 * MIB, 66 * MIB, 200 * MIB])
    assert goal.target == 16 and goal.frozen
    assert said[-1].startswith("back to 16 connections")
    assert feed(goal, [300 * MIB], t=10.0) == []  # frozen: nothing moves it any more


def test_windows_without_bytes_or_without_every_connection_decide_nothing():
    goal = ConnectionGoal(start=8, ceiling=32, window=0.125)  # times exact in binary
    goal.observe(0.0, 0, 8, True)
    assert goal.observe(0.125, 0, 8, True) is None  # blocks still being reserved: no byte
    assert goal.observe(0.25, 1 * MIB, 5, True) is None  # 3 connections not running yet
    assert goal.observe(0.375, 2 * MIB, 8, False) is None  # nothing left to hand out
    assert goal.observe(0.4375, 9 * MIB, 8, True) is None  # not a whole window yet
    assert goal.target == 8 and not goal.frozen
    assert goal.observe(0.5, 12 * MIB, 8, True) == "16 connections (at 83886080 B/s)"


def test_the_server_pushing_back_lowers_the_count_and_ends_the_growth():
    goal = ConnectionGoal(start=16, ceiling=32)
    feed(goal, [64 * MIB])
    assert goal.target == 32
    goal.lower(12)
    assert goal.target == 12 and goal.frozen
    goal.lower(0)
    assert goal.target == 1  # never below one connection


def test_fixed_count_never_moves():
    goal = ConnectionGoal(start=16, ceiling=32, adaptive=False)
    assert feed(goal, [10 * MIB, 100 * MIB, 1000 * MIB]) == []
    assert goal.target == 16
    assert ConnectionGoal(start=0, ceiling=32).target == 1
