"""The schedule's I/O layer (daemon/timekeeper.py) on a real scheduler and store.

The clock and the sleep are fakes, at that boundary only: the timekeeper asks the fake sleep
for N seconds, the test moves the fake wall clock on by N seconds and lets the sleep return;
no test waits for the real time of day. The transfers are test_scheduler.py's (a thread that
runs until finished or stopped), so a pause and a start are what the scheduler does to them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freight.daemon.events import Hub
from freight.daemon.scheduler import Scheduler
from freight.daemon.timekeeper import MAX_SLEEP, Timekeeper
from freight.models import DownloadState
from freight.store import Store
from test_scheduler import FakeTransfer, wait_for

S = DownloadState
MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()


class FakeTime:
    """The wall clock and the loop's sleep, moved on by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.asked: list[float] = []
        self._pending: asyncio.Future[None] | None = None

    def clock(self) -> dt.datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self._pending = asyncio.get_running_loop().create_future()
        try:
            await self._pending
        finally:
            self._pending = None

    async def next_sleep(self) -> float:
        """The seconds of the sleep the timekeeper is in now."""
        await wait_for(lambda: self._pending is not None)
        return self.asked[-1]

    async def pass_sleep(self) -> float:
        """Let the sleep end, its seconds gone by on the wall clock, and wait for the next
    sleep (a schedule always has one); the seconds passed are returned."""
        seconds = await self.next_sleep()
        assert self._pending is not None
        asked = len(self.asked)
        self.now += dt.timedelta(seconds=seconds)
        self._pending.set_result(None)
        await wait_for(lambda: len(self.asked) > asked)  # woke, applied, asleep again
        return seconds


def run(store: Store, time: FakeTime, body: Any) -> Any:
    transfers: dict[int, FakeTransfer] = {}

    def factory(*args: Any, **kwargs: Any) -> FakeTransfer:
        transfers[args[1]] = transfer = FakeTransfer(*args, **kwargs)
        return transfer

    async def main() -> Any:
        scheduler = Scheduler(store, Hub(), transfer_factory=factory)
        keeper = Timekeeper(scheduler, clock=time.clock, sleep=time.sleep)
        keeper.start()  # as app.py does: before the scheduler's start
        await scheduler.start()
        try:
            return await body(scheduler, keeper, transfers)
        finally:
            await keeper.close()
            for transfer in transfers.values():
                transfer.finish.set()
            await scheduler.shutdown(5)

    assert threading.current_thread() is threading.main_thread()
    return asyncio.run(main())


def states(store: Store, ids: list[int]) -> list[S]:
    return [store.get(i).state for i in ids]


def test_the_queue_stops_at_its_end_and_resumes_only_what_it_paused(store: Store) -> None:
    store.set_settings({"schedule_queue": ["01:00-07:00"]})
    a, b = (store.add(f"http://127.0.0.1/{n}.bin", "/tmp").id for n in "ab")
    mine = store.add("http://127.0.0.1/mine.bin", "/tmp", state=S.PAUSED).id
    time = FakeTime(dt.datetime(2026, 3, 1, 6, 59, 30))

    async def body(scheduler: Scheduler, keeper: Timekeeper, transfers: Any) -> None:
        await wait_for(lambda: scheduler.is_running(a) and scheduler.is_running(b))
        assert await time.next_sleep() == 30  # to 07:00, no sooner
        await time.pass_sleep()
        await wait_for(lambda: states(store, [a, b]) == [S.QUEUED, S.QUEUED])
        assert scheduler.held and not scheduler.running.ids()
        assert keeper.report()["next_change"] == "2026-03-02T01:00"
        assert keeper.report()["queue_change"] == "2026-03-02T01:00"
        late = store.add("http://127.0.0.1/late.bin", "/tmp")
        scheduler.added(late)
        # Held until 01:00: each sleep is at most MAX_SLEEP; the wakes before then start none.
        while time.now < dt.datetime(2026, 3, 2, 1, 0):
            assert await time.pass_sleep() <= MAX_SLEEP
            if time.now < dt.datetime(2026, 3, 2, 1, 0):
                assert not scheduler.running.ids() and scheduler.held
        await wait_for(lambda: all(scheduler.is_running(i) for i in (a, b, late.id)))
        assert store.get(mine).state == S.PAUSED  # the user's pause is the user's
        assert not scheduler.held

    run(store, time, body)


def test_a_daemon_started_in_held_hours_resumes_nothing(store: Store) -> None:
    store.set_settings({"schedule_queue": ["22:00-06:00"]})
    left = store.add("http://127.0.0.1/left.bin", "/tmp", state=S.ACTIVE).id  # a crash's
    time = FakeTime(dt.datetime(2026, 3, 1, 12, 0))

    async def body(scheduler: Scheduler, keeper: Timekeeper, transfers: Any) -> None:
        assert store.get(left).state == S.QUEUED and not transfers
        assert keeper.report()["held"] is True

    run(store, time, body)


def test_speed_windows_under_the_users_cap_and_a_live_change(store: Store) -> None:
    store.set_settings({"global_limit": 2 * MIB,
                        "schedule_limits": ["09:00-18:00=1M", "18:00-20:00=4M"]})
    time = FakeTime(dt.datetime(2026, 3, 1, 8, 0))

    async def body(scheduler: Scheduler, keeper: Timekeeper, transfers: Any) -> None:
        seen = [scheduler.limiter.rate]
        for _ in range(3):  # 09:00, 18:00, 20:00: at most MAX_SLEEP a sleep
            target = time.now.replace(minute=0) + dt.timedelta(
                hours={8: 1, 9: 9, 18: 2}[time.now.hour])
            while time.now < target:
                await time.pass_sleep()
            seen.append(scheduler.limiter.rate)
        assert seen == [2 * MIB, 1 * MIB, 2 * MIB, 2 * MIB]  # 4M may not lift the user's 2M
        assert keeper.next_change == dt.datetime(2026, 3, 2, 9, 0)
        # Settings changed as the API changes them: the sleep for the old table is cut short.
        asked = len(time.asked)
        scheduler.apply_settings(store.set_settings(
            {"global_limit": None, "schedule_limits": ["19:00-21:00=512K"]}))
        assert scheduler.limiter.rate == 512 * 1024  # 20:00 is in the new window
        await wait_for(lambda: len(time.asked) > asked)
        assert keeper.next_change == dt.datetime(2026, 3, 1, 21, 0)
        assert keeper.report()["limit_window"] == "19:00-21:00=524288"
        assert keeper.report()["rate_change"] == "2026-03-01T21:00"

    run(store, time, body)


def test_no_schedule_sleeps_without_end(store: Store) -> None:
    time = FakeTime(dt.datetime(2026, 3, 1, 8, 0))

    async def body(scheduler: Scheduler, keeper: Timekeeper, transfers: Any) -> None:
        await asyncio.sleep(0.05)
        assert time.asked == [] and keeper.seconds_to_change() is None
        assert keeper.report() == {"limit_window": None, "window_rate": None, "rate": None,
                                   "held": False, "next_change": None, "rate_change": None,
                                   "queue_change": None}

    run(store, time, body)
