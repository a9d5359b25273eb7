"""The speed figure of a transfer: bytes over the last couple of seconds (sans-I/O).

Not thread-safe: the transfer adds samples and reads the figure under its own lock.
"""

from __future__ import annotations

import collections

SPEED_WINDOW = 2.0  # seconds of history behind the speed figure


class SpeedMeter:
    __slots__ = ("_samples", "window")

    def __init__(self, window: float = SPEED_WINDOW) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, now: float, done: int) -> None:
        """Record that ``done`` bytes were held at time ``now`` (monotonic seconds)."""
        samples = self._samples
        samples.append((now, done))
        while samples and now - samples[0][0] > self.window:
            samples.popleft()

    def speed(self) -> float:
        """Bytes per second over the window; 0 without two samples apart in time."""
        samples = self._samples
        if len(samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = samples[0], samples[-1]
        if t1 <= t0:
            return 0.0
        return max(0.0, (d1 - d0) / (t1 - t0))

    def clear(self) -> None:
        self._samples.clear()
