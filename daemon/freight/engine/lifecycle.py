"""What happens after an error, after a failed attempt and at the end — decided here only.

Sans-I/O: the transfer's probe, its workers and its single stream hand over the error and
the context (which of the three asks, failures in a row so far, whether data is held, how
many other connections still work); a :class:`Decision` comes back, and the caller carries it
out (waits, retires the connection, lowers the host's cap, raises). The rules:

- **Retry.** A dropped connection, a stall, 408/425/5xx, 429/503 or a refused connection
  (TransientError) is retried after :func:`backoff`: exponential with jitter, never shorter
  than the server's Retry-After (RFC 9110 §10.2.3). ``max_tries`` failures in a row without a
  byte of progress give up (the data is kept).
- **Fewer connections.** 429/503 or a refused connection (ThrottledError) while segmented
  lowers the host's connection cap; while other connections still work this one retires
  instead of counting a failure.
- **Expired link.** 401/403/410 once the link is known to have worked — data is held, or
  (segmented) the probe of this attempt was answered — means the link expired: state
  ``needs_refresh`` (exit 3), data kept for a resume with a fresh URL. A single stream keeps
  nothing to resume (it starts again from byte 0), so there it is a final status like others.
- **Never splice two versions.** A changed validator or size, or a 200 to a request with
  If-Range (RFC 9110 §13.1.5; FileChangedError) restarts the download from byte 0; a server
  that cannot split (a wrong range or a 200 without validators; RangeError) restarts it as
  one stream, and so does a 200 to If-Range whose validators and size are the ones
  held (validate.UnconditionalRange, a RangeError): the server will not serve the range
  conditionally, the file did not change. At most ``max_restarts`` restarts, then the
  error ends the download.
- **End states.** An expired link → ``needs_refresh``; a full disk → ``paused`` (resumable
  once there is room); any other error → ``failed``, data kept.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from freight.errors import (
    DiskFullError,
    FileChangedError,
    FreightError,
    HTTPStatusError,
    LinkExpiredError,
    RangeError,
    ThrottledError,
    TransientError,
)
from freight.models import DownloadState

if TYPE_CHECKING:
    from freight.config import EngineSettings

#: Who asks: the probe (the first request of an attempt), a worker of a segmented transfer,
#: or the single stream.
Mode = Literal["probe", "segment", "single"]
#: Statuses that mean "this link no longer lets you in" once it did.
EXPIRED = frozenset({401, 403, 410})
MAX_RESTARTS = 3  # restarts from zero (file changed, cannot split) before giving up


class Verdict(enum.Enum):
    RETRY = "retry"  # wait ``delay`` seconds, then ask again
    RETIRE = "retire"  # this connection ends; the others carry on
    RESTART = "restart"  # forget all progress, start again from byte 0
    ONE_STREAM = "one_stream"  # start again from byte 0 as one stream, never split again
    REFRESH = "refresh"  # the link expired: end as needs_refresh (``error``)
    FAIL = "fail"  # raise ``error``: it ends the attempt (and may end the download)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    error: FreightError | None = None  # what to raise (REFRESH, FAIL) or say (restarts)
    delay: float = 0.0  # RETRY: seconds to wait first
    lower_cap: bool = False  # the host wants fewer connections
    count: int = 0  # failures in a row (after_error) or restarts (after_attempt) from now on


@dataclass(frozen=True)
class Policy:
    max_tries: int
    retry_base: float
    retry_max: float
    max_restarts: int = MAX_RESTARTS

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> Policy:
        return cls(settings.max_tries, settings.retry_base, settings.retry_max)


def backoff(failures: int, base: float, cap: float, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never shorter than the server's Retry-After (RFC 9110
    §10.2.3 gives the least time to wait; "0" must not turn retries into a busy loop)."""
    delay = min(cap, base * 2 ** max(0, failures - 1)) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return delay


def after_error(
    exc: FreightError,
    *,
    mode: Mode,
    failures: int,
    had_data: bool,
    policy: Policy,
    others: int = 0,
) -> Decision:
    """A request (or its body) failed with ``exc``. ``failures``: failures in a row before
    this one; ``had_data``: bytes of this download are held; ``others``: other connections
    of this download still working (segmented)."""
    if isinstance(exc, HTTPStatusError):
        if exc.status in EXPIRED and mode != "single" and (had_data or mode == "segment"):
            expired = LinkExpiredError(
                f"the link no longer works (HTTP {exc.status}): it needs refreshing"
            )
            return Decision(Verdict.REFRESH, expired, count=failures)
        return Decision(Verdict.FAIL, exc, count=failures)
    if not isinstance(exc, TransientError):
        return Decision(Verdict.FAIL, exc, count=failures)
    throttled = mode == "segment" and isinstance(exc, ThrottledError)
    if throttled and others > 0:
        return Decision(Verdict.RETIRE, lower_cap=True, count=failures)
    count = failures + 1
    if count >= policy.max_tries:
        error: FreightError = exc
        if mode == "segment":
            error = TransientError(f"gave up after {count} failures in a row: {exc}")
        return Decision(Verdict.FAIL, error, lower_cap=throttled, count=count)
    delay = backoff(count, policy.retry_base, policy.retry_max, exc.retry_after)
    return Decision(Verdict.RETRY, delay=delay, lower_cap=throttled, count=count)


def after_attempt(exc: FreightError, *, restarts: int, policy: Policy) -> Decision:
    """An attempt (probe → transfer → finish) ended with ``exc``; ``restarts`` so far."""
    if isinstance(exc, FileChangedError | RangeError) and restarts < policy.max_restarts:
        verdict = Verdict.ONE_STREAM if isinstance(exc, RangeError) else Verdict.RESTART
        return Decision(verdict, exc, count=restarts + 1)
    return Decision(Verdict.FAIL, exc, count=restarts)


def end_state(exc: FreightError) -> DownloadState:
    """The state a download ends in after ``exc`` (a stop and a busy file are the caller's)."""
    if isinstance(exc, LinkExpiredError):
        return DownloadState.NEEDS_REFRESH
    if isinstance(exc, DiskFullError):
        return DownloadState.PAUSED
    return DownloadState.FAILED
