"""How many connections a download wants: the adaptive rule, without I/O.

A download starts with ``start`` connections. Every ``window`` seconds the transfer reports
its byte count; the first full window with data steps the count up (×2, up to ``ceiling``) to
see whether the server rewards more connections, the common case of a per-connection rate
limit. Each further window judges the last step: throughput grew by ``gain`` (15 %) or more →
step again; it did not → back to the count before the step, and stay (more connections that
bring nothing only cost the server and us). A window without a byte (the file's blocks still
being reserved, a stall) or with fewer connections running than wanted says nothing, and is
skipped. A 429/503 or a refused connection lowers the count at once (:meth:`lower`) and ends
the growth: the server has said how many it takes. When the host's cap recovers (limits.
HostCaps: after a quiet period), so does the count, up to what it was before the push-back
(:meth:`recover`): one burst of 429s does not cost the download its connections for good.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ConnectionGoal:
    start: int
    ceiling: int
    adaptive: bool = True
    window: float = 0.1
    gain: float = 1.15

    def __post_init__(self) -> None:
        self.start = max(1, self.start)
        self.target = self.start
        self.frozen = not self.adaptive or self.ceiling <= self.start
        self._since: float | None = None  # when the current window began
        self._done_then = 0
        self._rate_before: float | None = None  # the rate before the last step up
        self._count_before = self.start
        self._wanted: int | None = None  # the count before a push-back, while it is lower

    def observe(self, now: float, done: int, running: int, has_work: bool) -> str | None:
        """Account for progress at ``now``; returns what changed, in words, or None."""
        if self.frozen:
            return None
        if self._since is None:
            self._since, self._done_then = now, done
            return None
        if now - self._since < self.window:
            return None
        rate = (done - self._done_then) / (now - self._since)
        moved = done > self._done_then
        self._since, self._done_then = now, done
        if not moved or running < self.target or not has_work:
            return None
        if self._rate_before is not None and rate <= self._rate_before * self.gain:
            before = self._rate_before
            self.target, self.frozen = self._count_before, True
            return f"back to {self.target} connections ({rate:.0f} B/s did not beat {before:.0f})"
        if self.target >= self.ceiling:
            self.frozen = True  # the step to the ceiling paid: stay there
            return None
        self._rate_before, self._count_before = rate, self.target
        self.target = min(self.ceiling, self.target * 2)
        return f"{self.target} connections (at {rate:.0f} B/s)"

    def lower(self, cap: int) -> None:
        """The server pushed back: at most ``cap`` connections until it allows more."""
        if self._wanted is None:
            self._wanted = self.target
        self.target = max(1, min(self.target, cap))
        self.frozen = True

    def recover(self, cap: int) -> str | None:
        """The host allows ``cap`` connections again: back up towards the count before the
        push-back (never beyond it). Returns what changed, in words, or None."""
        if self._wanted is None or cap <= self.target:
            return None
        self.target = min(self._wanted, cap)
        if self.target >= self._wanted:
            self._wanted = None
        return f"back up to {self.target} connections (the host allows {cap})"
