"""lifecycle: the one place that decides what an error means (sans-I/O, no sockets)."""

from __future__ import annotations

import pytest
from freight.engine import lifecycle
from freight.engine.lifecycle import Policy, Verdict, after_attempt, after_error, backoff, end_state
from freight.errors import (
    BusyError,
    DiskFullError,
    FileChangedError,
    FreightError,
    HTTPStatusError,
    LinkExpiredError,
    ProtocolViolation,
    RangeError,
    StalledError,
    ThrottledError,
    TransientError,
)
from freight.models import DownloadState
from hypothesis import given
from hypothesis import strategies as st

POLICY = Policy(max_tries=5, retry_base=0.5, retry_max=60.0)
MODES = ("probe", "segment", "single")


@given(
    failures=st.integers(1, 200),
    base=st.floats(0.0, 60.0),
    cap=st.floats(0.0, 3600.0),
    retry_after=st.none() | st.floats(0.0, 10_000.0),
)
def test_backoff_is_jittered_exponential_and_honours_retry_after(
    failures: int, base: float, cap: float, retry_after: float | None
) -> None:
    delay = backoff(failures, base, cap, retry_after)
    exponential = min(cap, base * 2 ** (failures - 1))
    assert 0.0 <= delay <= max(cap, 0.0) + 1e-9
    if retry_after is None:
        assert 0.5 * exponential - 1e-9 <= delay <= exponential + 1e-9
    else:
        assert delay >= min(cap, retry_after) - 1e-9  # RFC 9110 §10.2.3: never sooner


@given(status=st.sampled_from(sorted(lifecycle.EXPIRED)), mode=st.sampled_from(MODES),
       had_data=st.booleans(), failures=st.integers(0, 10))
def test_an_expired_link_needs_a_refresh_once_it_worked(
    status: int, mode: lifecycle.Mode, had_data: bool, failures: int
) -> None:
    exc = HTTPStatusError(f"HTTP {status}", status=status)
    decision = after_error(exc, mode=mode, failures=failures, had_data=had_data, policy=POLICY)
    worked = mode == "segment" or (mode == "probe" and had_data)
    if worked:
        assert decision.verdict is Verdict.REFRESH
        assert isinstance(decision.error, LinkExpiredError)
        assert end_state(decision.error) is DownloadState.NEEDS_REFRESH
    else:
        assert decision.verdict is Verdict.FAIL and decision.error is exc


@given(status=st.integers(400, 599).filter(lambda s: s not in lifecycle.EXPIRED),
       mode=st.sampled_from(MODES), had_data=st.booleans())
def test_other_final_statuses_fail(status: int, mode: lifecycle.Mode, had_data: bool) -> None:
    exc = HTTPStatusError(f"HTTP {status}", status=status)
    decision = after_error(exc, mode=mode, failures=0, had_data=had_data, policy=POLICY)
    assert decision.verdict is Verdict.FAIL and decision.error is exc


@given(failures=st.integers(0, 20), mode=st.sampled_from(MODES),
       exc=st.sampled_from([TransientError("drop"), StalledError("stall"),
                            TransientError("503", retry_after=3.0)]))
def test_transient_errors_are_retried_until_max_tries_in_a_row(
    failures: int, mode: lifecycle.Mode, exc: TransientError
) -> None:
    decision = after_error(exc, mode=mode, failures=failures, had_data=True, policy=POLICY)
    assert decision.count == failures + 1
    assert not decision.lower_cap
    if failures + 1 >= POLICY.max_tries:
        assert decision.verdict is Verdict.FAIL
        assert isinstance(decision.error, TransientError)
        if mode == "segment":
            assert str(decision.error).startswith(f"gave up after {failures + 1} failures")
        else:
            assert decision.error is exc
    else:
        assert decision.verdict is Verdict.RETRY
        assert decision.delay <= POLICY.retry_max
        if exc.retry_after is not None:
            assert decision.delay >= exc.retry_after


def test_throttling_lowers_the_cap_and_retires_a_connection_while_others_work() -> None:
    exc = ThrottledError("HTTP 429", status=429)
    retire = after_error(exc, mode="segment", failures=2, had_data=True, policy=POLICY, others=3)
    assert retire.verdict is Verdict.RETIRE and retire.lower_cap and retire.count == 2
    alone = after_error(exc, mode="segment", failures=2, had_data=True, policy=POLICY)
    assert alone.verdict is Verdict.RETRY and alone.lower_cap and alone.count == 3
    probe = after_error(exc, mode="probe", failures=0, had_data=False, policy=POLICY, others=3)
    assert probe.verdict is Verdict.RETRY and not probe.lower_cap


@pytest.mark.parametrize("exc", [FileChangedError("changed"), RangeError("range"),
                                 ProtocolViolation("too big"), DiskFullError("full")])
@pytest.mark.parametrize("mode", MODES)
def test_other_errors_end_the_attempt(exc: FreightError, mode: lifecycle.Mode) -> None:
    decision = after_error(exc, mode=mode, failures=1, had_data=True, policy=POLICY)
    assert decision.verdict is Verdict.FAIL and decision.error is exc and decision.count == 1


@given(restarts=st.integers(0, 10))
def test_attempts_restart_from_zero_or_as_one_stream_a_bounded_number_of_times(
    restarts: int
) -> None:
    changed = after_attempt(FileChangedError("x"), restarts=restarts, policy=POLICY)
    unsplittable = after_attempt(RangeError("x"), restarts=restarts, policy=POLICY)
    if restarts < lifecycle.MAX_RESTARTS:
        assert changed.verdict is Verdict.RESTART and changed.count == restarts + 1
        assert unsplittable.verdict is Verdict.ONE_STREAM
    else:
        assert changed.verdict is Verdict.FAIL and unsplittable.verdict is Verdict.FAIL
    other = after_attempt(TransientError("x"), restarts=0, policy=POLICY)
    assert other.verdict is Verdict.FAIL


def test_end_states() -> None:
    assert end_state(LinkExpiredError("x")) is DownloadState.NEEDS_REFRESH
    assert end_state(DiskFullError("x")) is DownloadState.PAUSED
    assert end_state(TransientError("x")) is DownloadState.FAILED
    assert end_state(BusyError("x")) is DownloadState.FAILED  # the transfer leaves it alone
