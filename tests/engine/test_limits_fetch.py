"""Token buckets with an injected clock, host caps, and fetch's pure parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from freight.engine.http.validate import Validators, parse_content_range, retry_after_seconds
from freight.engine.limits import HostCaps, RateLimiter, TokenBucket
from hypothesis import given, settings
from hypothesis import strategies as st

# -- TokenBucket ---------------------------------------------------------------------------


def test_bucket_arithmetic():
    bucket = TokenBucket(rate=100, burst=50, now=0.0)
    assert bucket.reserve(50, 0.0) == 0.0  # the burst passes at once
    assert bucket.reserve(10, 0.0) == pytest.approx(0.1)  # then 10 bytes at 100 B/s
    assert bucket.reserve(10, 0.1) == pytest.approx(0.1)  # the debt was just repaid
    # A long idle refills only up to the burst.
    assert bucket.reserve(50, 1000.0) == 0.0
    assert bucket.reserve(1, 1000.0) == pytest.approx(0.01)


def test_bucket_goes_into_debt_for_big_reads():
    bucket = TokenBucket(rate=1000, burst=100, now=0.0)
    # One read far bigger than the burst: its bytes are paid for after it.
    assert bucket.reserve(1100, 0.0) == pytest.approx(1.0)
    # Half a second later half the debt is repaid; the next 100 bytes wait for the rest too.
    assert bucket.reserve(100, 0.5) == pytest.approx(0.6)


def test_bucket_set_rate_keeps_tokens_under_the_new_burst():
    bucket = TokenBucket(rate=1000, burst=1000, now=0.0)
    bucket.set_rate(10, 5, 0.0)
    assert bucket.reserve(5, 0.0) == 0.0
    assert bucket.reserve(10, 0.0) == pytest.approx(1.0)


def test_bucket_refuses_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(0, 10, 0.0)
    with pytest.raises(ValueError):
        TokenBucket(10, 0, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(1_000, 10_000_000),
    burst_fraction=st.floats(0.01, 1.0),
    reads=st.lists(st.integers(1, 300_000), min_size=1, max_size=60),
)
def test_long_run_rate_is_exact(rate, burst_fraction, reads):
    """A reader that waits what it is told moves N bytes in (N - burst) / rate seconds."""
    burst = rate * burst_fraction
    now = 0.0
    bucket = TokenBucket(rate, burst, now)
    for n in reads:
        now += bucket.reserve(n, now)
    total = sum(reads)
    expected = max(0.0, (total - burst) / rate)
    assert now == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_rate_limiter_with_a_fake_clock():
    clock = [0.0]
    limiter = RateLimiter(None, clock=lambda: clock[0])
    assert limiter.rate is None
    assert limiter.delay(10**9) == 0.0  # unlimited costs nothing
    limiter.set_rate(1024 * 1024)
    assert limiter.rate == 1024 * 1024
    burst = 1024 * 1024 / 5
    assert limiter.delay(int(burst)) == 0.0
    assert limiter.delay(1024 * 1024) == pytest.approx(1.0, rel=1e-6)
    clock[0] = 1.0
    assert limiter.delay(0) == pytest.approx(0.0, abs=1e-6)
    # A small rate still lets one socket read through without waiting (16 KiB burst floor).
    small = RateLimiter(1000, clock=lambda: clock[0])
    assert small.delay(16 * 1024) == 0.0
    limiter.set_rate(None)
    assert limiter.delay(10**9) == 0.0


def test_host_caps_lower_and_reset():
    caps = HostCaps(8)
    assert all(caps.acquire("h") for _ in range(8))
    assert not caps.acquire("h")
    assert caps.acquire("h", force=True)  # an open probe counts even over the cap
    assert caps.acquire("other")
    assert caps.lower("h") == 7  # pushed back: one fewer than the cap (or than the active)
    assert not caps.acquire("h")
    for _ in range(5):
        caps.release("h")
    assert caps.lower("h") == 3  # 4 active now: one fewer than that
    for _ in range(20):
        caps.lower("h")
    assert caps.cap("h") == 1  # never below one
    caps.reset("h")
    assert caps.cap("h") == 8
    assert caps.cap("other") == 8


# -- fetch parsers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-99/1000", (0, 100, 1000)),
        ("bytes 0-99/*", (0, 100, None)),
        ("BYTES 1-1/2", (1, 2, 2)),
        ("  bytes 0-0/1 ", (0, 1, 1)),
        ("bytes 5-4/10", None),  # last before first
        ("bytes 0-10/10", None),  # beyond the total
        ("bytes */1000", None),  # the 416 form is no range
        ("items 0-1/2", None),
        ("bytes 0-1", None),
        ("bytes -1-5/10", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_content_range(value, parsed):
    assert parse_content_range(value) == parsed


def test_validators():
    strong = Validators.from_headers(
        httpx.Headers({"ETag": '"v1"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )
    assert strong.etag == '"v1"'
    assert strong.if_range() == '"v1"'  # a strong ETag is preferred for If-Range
    weak = Validators.from_headers(
        httpx.Headers({"ETag": 'W/"v1"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )
    assert weak.etag == 'W/"v1"'  # kept: compared on every response (RFC 9110 §8.8.3.2)
    # RFC 9110 §13.1.5: a weak tag cannot be used with If-Range, nor a date beside a tag
    assert weak.if_range() is None
    dated = Validators(None, "Wed, 21 Oct 2015 07:28:00 GMT")
    assert dated.if_range() == "Wed, 21 Oct 2015 07:28:00 GMT"
    bad_date = Validators.from_headers(httpx.Headers({"Last-Modified": "yesterday-ish"}))
    assert bad_date.last_modified is None and bad_date.if_range() is None

    assert Validators('"a"').conflicts_with(Validators('"b"'))
    assert not Validators('"a"').conflicts_with(Validators('"a"'))
    assert not Validators('"a"').conflicts_with(Validators(None, "x"))  # nothing to compare
    assert Validators(None, "d1").conflicts_with(Validators(None, "d2"))
    assert not Validators().conflicts_with(Validators('"a"', "d"))


def test_retry_after():
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(" 7 ") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-1") is None
    assert retry_after_seconds("1.5") is None  # delay-seconds is an integer (RFC 9110 §10.2.3)
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < retry_after_seconds(future) <= 120
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=120), usegmt=True)
    assert retry_after_seconds(past) == 0.0
