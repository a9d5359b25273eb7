"""The schedule applied on the daemon's loop: the I/O around freight/timetable.py.

It reads the local time, asks the timetable for the rate and whether the queue may run, and
applies both to the scheduler; then it sleeps until the next change (or a settings change
wakes it). Nothing runs while no schedule is set.

- Speed: the limiter's rate is the smaller of the user's global limit (``freight limit``)
  and the window's (:func:`~freight.timetable.combine`): a window may slow Freight
  down, never lift the user's own cap.
- Queue: outside every queue window the scheduler's queue is held (:attr:`Scheduler.held`,
  which ``fill`` reads): queued downloads wait, added ones too. When the queue goes from
  running to held (a stop time passes, or a window set now excludes now), the downloads
  running then are paused and put back in the queue, keeping their place; when a window
  opens the queue runs again and they go first. Downloads the user paused stay paused: only
  those the schedule stopped start again by themselves.

The clock and the sleep are injected: ``clock()`` gives the local wall time (naive, as
``datetime.now()``), ``sleep(seconds)`` waits on the loop. Wall time and the loop's
monotonic time drift apart when the machine is suspended or the clocks change for DST, so no
sleep is longer than MAX_SLEEP: a change is then at most that late, and a wake that finds no
change does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from freight.daemon.scheduler import Scheduler
from freight.errors import FreightError
from freight.models import DownloadState
from freight.timetable import Timetable, combine

log = logging.getLogger(__name__)

#: Seconds; see the module's last paragraph.
MAX_SLEEP = 900.0

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], Awaitable[None]]


class Timekeeper:
    def __init__(self, scheduler: Scheduler, *, clock: Clock = dt.datetime.now,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.scheduler = scheduler
        self._clock = clock
        self._sleep = sleep
        self.table = Timetable()
        self.window_rate: int | None = None  # the rate of the window in force, if any
        #: When the rate or the queue's answer next changes (local wall time), if ever.
        self.next_change: dt.datetime | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pausing: set[asyncio.Task[None]] = set()
        scheduler.settings_listeners.append(self._settings_changed)

    def start(self) -> None:
        """Apply the schedule now (before the scheduler starts, so that a held queue
        resumes nothing), then follow it on the loop."""
        self.apply(fill=False)
        if self.scheduler.held:  # what a previous daemon left active waits in the queue
            for download in self.scheduler.store.list([DownloadState.ACTIVE])[0]:
                self.scheduler.keeper.move(download.id, DownloadState.QUEUED)
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        for task in (self._task, *self._pausing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def apply(self, settings: dict[str, Any] | None = None, *, fill: bool = True) -> None:
        """Set the rate and the hold for the time now; the edges of the hold act."""
        scheduler = self.scheduler
        settings = scheduler.store.settings() if settings is None else settings
        self.table = Timetable.from_settings(settings)
        now = self._clock()
        minute = now.hour * 60 + now.minute
        rate, runs = self.table.state_at(minute)
        self.window_rate = rate
        scheduler.limiter.set_rate(combine(settings["global_limit"], rate))
        was_held, scheduler.held = scheduler.held, not runs
        delta = self.table.next_change(minute)
        self.next_change = (None if delta is None else
                            now.replace(second=0, microsecond=0) + dt.timedelta(minutes=delta))
        if scheduler.held and not was_held:
            held_for = self.table.next_change(minute, self.table.queue_runs)
            log.info("schedule: the queue is held for %s min", held_for)
            self._pause_running()
        elif was_held and not scheduler.held:
            log.info("schedule: the queue runs")
            if fill:
                scheduler.fill()

    def report(self) -> dict[str, Any]:
        """``status``'s ``schedule`` (docs/PROTOCOL.md)."""
        now = self._clock()
        minute = now.hour * 60 + now.minute
        window = self.table.limit_window(minute)

        def when(delta: int | None) -> str | None:
            if delta is None:
                return None
            moment = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=delta)
            return moment.isoformat(timespec="minutes")

        return {
            "limit_window": None if window is None else window.text(),
            "window_rate": self.window_rate,
            "rate": self.scheduler.limiter.rate,  # in force: under the user's limit
            "held": self.scheduler.held,
            "next_change": when(self.table.next_change(minute)),
            "rate_change": when(self.table.next_change(minute, self.table.rate_at)),
            "queue_change": when(self.table.next_change(minute, self.table.queue_runs)),
        }

    def seconds_to_change(self) -> float | None:
        """How long to sleep: to the next change, at most MAX_SLEEP; None: no change ever."""
        if self.next_change is None:
            return None
        wait = (self.next_change - self._clock()).total_seconds()
        return min(max(wait, 0.0), MAX_SLEEP)

    def _settings_changed(self, settings: dict[str, Any]) -> None:
        """Scheduler.apply_settings calls this after setting the user's limit, before its
        fill (so no fill here)."""
        self.apply(settings, fill=False)
        self._wake.set()  # the loop's sleep was for the old table

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            delay = self.seconds_to_change()
            waits = [asyncio.ensure_future(self._wake.wait())]
            if delay is not None:
                waits.append(asyncio.ensure_future(self._sleep(delay)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            try:
                self.apply()
            except FreightError as exc:  # the store failed; the next wake tries again
                log.warning("schedule: %s", exc)

    def _pause_running(self) -> None:
        ids = self.scheduler.running.ids()
        if ids:
            task = asyncio.get_running_loop().create_task(self._pause_to_queue(ids))
            self._pausing.add(task)
            task.add_done_callback(self._pausing.discard)

    async def _pause_to_queue(self, ids: list[int]) -> None:
        scheduler = self.scheduler
        ended = await asyncio.gather(*(scheduler.stop(i, "pause") for i in ids))
        for download in ended:
            if download is not None and download.state == DownloadState.PAUSED:
                with contextlib.suppress(FreightError):  # removed meanwhile
                    scheduler.keeper.move(download.id, DownloadState.QUEUED)
        if not scheduler.held:  # the window opened again while they stopped
            scheduler.fill()

