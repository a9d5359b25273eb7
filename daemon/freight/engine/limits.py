"""Speed limits (token buckets) and per-host connection caps.

:class:`TokenBucket` is the sans-I/O rule: it is told the time and answers how long to wait.
:class:`RateLimiter` wraps it with a lock and a real clock for the transfer threads; one
limiter is shared by all connections of a download, another by all downloads (the global
limit), and a connection passes both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class TokenBucket:
    """Bytes may pass at ``rate`` per second with bursts up to ``burst``.

    The bucket may go into debt: a reader that takes more than there is waits for the debt to
    be repaid. This keeps the long-run rate exact whatever the size of the reads.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._stamp = now

    def reserve(self, n: int, now: float) -> float:
        """Take ``n`` bytes; return the seconds to wait before sending them (0 if none)."""
        self._refill(now)
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def set_rate(self, rate: float, burst: float, now: float) -> None:
        self._refill(now)
        self.rate, self.burst = rate, burst
        self._tokens = min(self._tokens, burst)


class RateLimiter:
    """A thread-safe bucket; ``rate=None`` lets everything through at no cost."""

    def __init__(
        self,
        rate: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._bucket: TokenBucket | None = None
        self.set_rate(rate)

    @property
    def rate(self) -> int | None:
        return None if self._bucket is None else int(self._bucket.rate)

    @staticmethod
    def _burst(rate: int) -> float:
        # A fifth of a second of traffic: small enough to keep the rate even over a second,
        # large enough that one socket read does not always wait.
        return max(16 * 1024, rate / 5)

    def set_rate(self, rate: int | None) -> None:
        with self._lock:
            if rate is None:
                self._bucket = None
            elif self._bucket is None:
                self._bucket = TokenBucket(rate, self._burst(rate), self._clock())
            else:
                self._bucket.set_rate(rate, self._burst(rate), self._clock())

    def delay(self, n: int) -> float:
        """Reserve ``n`` bytes; the caller waits the returned seconds before going on."""
        with self._lock:
            if self._bucket is None:
                return 0.0
            return self._bucket.reserve(n, self._clock())


@dataclass
class _Host:
    cap: int
    active: int = 0


class HostCaps:
    """How many connections each host may get at once, shared by all transfers.

    A 429/503 or a refused connection lowers the host's cap to what it had working minus one;
    the cap never drops below one, and it is restored by :meth:`reset` (a new download).
    """

    def __init__(self, cap: int) -> None:
        self.default = cap
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        return self._hosts.setdefault(host, _Host(self.default))

    def acquire(self, host: str, *, force: bool = False) -> bool:
        """Take a connection slot; ``force`` counts one that is already open (a probe)."""
        with self._lock:
            h = self._host(host)
            if h.active >= h.cap and not force:
                return False
            h.active += 1
            return True

    def release(self, host: str) -> None:
        with self._lock:
            h = self._host(host)
            h.active = max(0, h.active - 1)

    def lower(self, host: str) -> int:
        """The host pushed back: allow one connection fewer than it has now (at least one)."""
        with self._lock:
            h = self._host(host)
            h.cap = max(1, min(h.cap, h.active) - 1) if h.active > 1 else 1
            return h.cap

    def cap(self, host: str) -> int:
        with self._lock:
            return self._host(host).cap

    def set_default(self, cap: int) -> None:
        with self._lock:
            self.default = cap
            for h in self._hosts.values():
                h.cap = cap

    def reset(self, host: str) -> None:
        with self._lock:
            self._host(host).cap = self.default
