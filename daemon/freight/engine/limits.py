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
from dataclasses import dataclass, field


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


#: Seconds without a push-back (429/503, a refused connection) after which a lowered host
#: cap doubles, up to the default: one burst of 429s must not cost a host its connections
#: for the rest of the process's life, and a server that still objects says so again.
RECOVER_AFTER = 10.0


@dataclass
class _Host:
    cap: int
    active: int = 0
    calm_since: float = 0.0  # the last push-back
    waiters: set[threading.Event] = field(default_factory=set)


class HostCaps:
    """How many connections each host may get at once, shared by all transfers.

    A 429/503 or a refused connection lowers the host's cap to what it had working minus one
    (never below one); after ``recover_after`` seconds without another, the cap doubles, up
    to the default. :meth:`reset` restores it at once.

    A download with no free slot never spins: :meth:`acquire` fails and registers the
    download's wake-up event, which the next :meth:`release` (or a recovery) of that host
    sets. Sans-I/O but for the lock: the clock is injectable.
    """

    def __init__(
        self,
        cap: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        recover_after: float = RECOVER_AFTER,
    ) -> None:
        self.default = cap
        self.recover_after = recover_after
        self._clock = clock
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        h = self._hosts.get(host)
        if h is None:
            h = self._hosts[host] = _Host(self.default)
        elif h.cap < self.default:
            now = self._clock()
            while h.cap < self.default and now - h.calm_since >= self.recover_after:
                h.cap = min(self.default, 2 * h.cap)
                h.calm_since += self.recover_after
                self._wake(h)
        return h

    @staticmethod
    def _wake(h: _Host) -> None:
        for event in h.waiters:
            event.set()
        h.waiters.clear()

    def acquire(
        self, host: str, *, force: bool = False, waiter: threading.Event | None = None
    ) -> bool:
        """Take a connection slot; ``force`` counts one that is already open (a probe).
        When none is free, ``waiter`` (if given) is set once one may be."""
        with self._lock:
            h = self._host(host)
            if h.active >= h.cap and not force:
                if waiter is not None:
                    h.waiters.add(waiter)
                return False
            h.active += 1
            return True

    def release(self, host: str) -> None:
        with self._lock:
            h = self._host(host)
            h.active = max(0, h.active - 1)
            if h.active < h.cap:
                self._wake(h)

    def release_if_over(self, host: str) -> bool:
        """Give a slot back if the host has more connections than its cap (lowered by
        another download's push-back, or by the settings): True when this one must end."""
        with self._lock:
            h = self._host(host)
            if h.active <= h.cap:
                return False
            h.active -= 1
            return True

    def lower(self, host: str) -> int:
        """The host pushed back: allow one connection fewer than it has now (at least one)."""
        with self._lock:
            h = self._host(host)
            h.cap = max(1, min(h.cap, h.active) - 1) if h.active > 1 else 1
            h.calm_since = self._clock()
            return h.cap

    def cap(self, host: str) -> int:
        with self._lock:
            return self._host(host).cap

    def active(self, host: str) -> int:
        with self._lock:
            return self._host(host).active

    def set_default(self, cap: int) -> None:
        with self._lock:
            self.default = cap
            for h in self._hosts.values():
                h.cap = cap
                self._wake(h)

    def reset(self, host: str) -> None:
        with self._lock:
            h = self._host(host)
            h.cap = self.default
            self._wake(h)
