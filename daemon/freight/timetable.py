"""The schedule's rules, without I/O: what the speed limit is and whether the queue may run
at a local time of day, and when either next changes.

Two settings hold the table (config.SETTINGS, ``freight schedule``):

- ``schedule_limits``: windows with a rate, ``"09:00-18:00=1048576"`` (bytes/s) or
  ``"…=none"`` (full speed). Outside every window the user's own global limit applies.
- ``schedule_queue``: the windows in which the queue runs, ``"01:00-07:00"``. None set: the
  queue always runs. Outside them the queue is held (daemon/timekeeper.py says what that does
  to running downloads).

A window is ``[start, end)`` in minutes of the local day; one whose end is not after its start
crosses midnight (``22:00-06:00``); ``24:00`` may end one. Windows of one setting may not
overlap, so that at any minute at most one applies and no precedence rule is needed. Time is
minutes since local midnight: the caller turns its clock into that, so DST and time zones are
the I/O layer's business (daemon/timekeeper.py), and days of the week are not part of the
table (every day is the same).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from freight.errors import InputError

DAY = 24 * 60  # minutes

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in minutes of the day; ``end <= start`` crosses midnight."""

    start: int
    end: int  # 1..1440

    def covers(self, minute: int) -> bool:
        minute %= DAY
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def spans(self) -> list[tuple[int, int]]:
        """The window as one or two ``[a, b)`` spans inside one day."""
        if self.start < self.end:
            return [(self.start, self.end)]
        return [(self.start, DAY), (0, self.end)] if self.end else [(self.start, DAY)]

    def text(self) -> str:
        return f"{clock_text(self.start)}-{clock_text(self.end)}"


@dataclass(frozen=True)
class RateWindow:
    window: Window
    rate: int | None  # bytes/s; None: full speed

    def text(self) -> str:
        return f"{self.window.text()}={'none' if self.rate is None else self.rate}"


def clock_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_time(text: str, *, end: bool = False) -> int:
    """``"7:30"`` → 450; ``24:00`` only as an end. Raises InputError saying what works."""
    match = _TIME.match(text.strip())
    hours, minutes = (int(match[1]), int(match[2])) if match else (-1, -1)
    if not (0 <= hours <= 23 and 0 <= minutes <= 59) and not (end and (hours, minutes) == (24, 0)):
        raise InputError(f"not a time of day: {text!r} (use HH:MM, 00:00 to 23:59)")
    return hours * 60 + minutes


def parse_window(text: str) -> Window:
    """``"22:00-06:00"`` → a window crossing midnight."""
    start, sep, end = text.partition("-")
    if not sep:
        raise InputError(f"not a window: {text!r} (use START-END, e.g. 09:00-18:00)")
    window = Window(parse_time(start), parse_time(end, end=True))
    if window.start == window.end % DAY:
        raise InputError(f"window {text!r} is empty: its start and end are the same time")
    return window


def parse_rate_window(text: str) -> RateWindow:
    """``"09:00-18:00=1048576"`` or ``"…=none"``; the rate in bytes/s, at least 1."""
    span, sep, rate_text = text.partition("=")
    if not sep:
        raise InputError(f"not a limit window: {text!r} (use START-END=RATE, e.g. "
                         "09:00-18:00=1M)")
    window = parse_window(span)
    rate_text = rate_text.strip()
    if rate_text.lower() in ("none", "full", "unlimited"):
        return RateWindow(window, None)
    from freight.config import parse_rate  # config imports this module's checks

    return RateWindow(window, parse_rate(rate_text))


def check_overlaps(windows: Iterable[Window]) -> None:
    """Raise InputError naming the first two windows that share a minute."""
    seen: list[tuple[int, int, Window]] = []
    for window in windows:
        for a, b in window.spans():
            for c, d, other in seen:
                if a < d and c < b:
                    raise InputError(f"windows {other.text()} and {window.text()} overlap")
        seen.extend((a, b, window) for a, b in window.spans())


def check_limits(name: str, values: list[str]) -> list[str]:
    """config.validate_setting's check of ``schedule_limits``: the windows normalised."""
    try:
        windows = [parse_rate_window(v) for v in values]
        check_overlaps(w.window for w in windows)
    except InputError as exc:
        raise InputError(f"setting {name!r}: {exc.message}", setting=name) from None
    return [w.text() for w in sorted(windows, key=lambda w: w.window.start)]


def check_queue(name: str, values: list[str]) -> list[str]:
    """config.validate_setting's check of ``schedule_queue``."""
    try:
        windows = [parse_window(v) for v in values]
        check_overlaps(windows)
    except InputError as exc:
        raise InputError(f"setting {name!r}: {exc.message}", setting=name) from None
    return [w.text() for w in sorted(windows, key=lambda w: w.start)]


CHECKS: dict[str, Any] = {"schedule_limits": check_limits, "schedule_queue": check_queue}


@dataclass(frozen=True)
class Timetable:
    limits: tuple[RateWindow, ...] = ()
    queue: tuple[Window, ...] = ()

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Timetable:
        """The table from stored (already checked) settings."""
        return cls(tuple(parse_rate_window(v) for v in settings.get("schedule_limits", [])),
                   tuple(parse_window(v) for v in settings.get("schedule_queue", [])))

    def limit_window(self, minute: int) -> RateWindow | None:
        """The limit window that covers ``minute``, if one does (at most one: no overlaps)."""
        return next((w for w in self.limits if w.window.covers(minute)), None)

    def rate_at(self, minute: int) -> int | None:
        """The window's rate at ``minute``; None: no window, or a full-speed one."""
        window = self.limit_window(minute)
        return None if window is None else window.rate

    def queue_runs(self, minute: int) -> bool:
        """Whether queued downloads may start at ``minute``."""
        return not self.queue or any(w.covers(minute) for w in self.queue)

    def state_at(self, minute: int) -> tuple[int | None, bool]:
        return self.rate_at(minute), self.queue_runs(minute)

    def next_change(self, minute: int, answer: Callable[[int], Any] | None = None) -> int | None:
        """Minutes from ``minute`` (1..1440) to the first minute whose rate or queue answer
        (or only ``answer``: ``rate_at``, ``queue_runs``) differs from ``minute``'s; None when
        it never changes."""
        minute %= DAY
        state_at = answer or self.state_at
        now = state_at(minute)
        edges = {w.window.start for w in self.limits} | {w.window.end for w in self.limits}
        edges |= {w.start for w in self.queue} | {w.end for w in self.queue}
        ahead = sorted(((edge - minute) % DAY or DAY) for edge in edges)
        for delta in ahead:  # the answers change only at an edge
            if state_at(minute + delta) != now:
                return delta
        return None


def combine(user_limit: int | None, window_rate: int | None) -> int | None:
    """The rate in force: the user's global limit stays the cap, and a window may only lower
    it (the smaller of the two; None is no limit)."""
    if user_limit is None:
        return window_rate
    if window_rate is None:
        return user_limit
    return min(user_limit, window_rate)
