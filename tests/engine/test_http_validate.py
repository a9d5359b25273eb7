"""The checks of every reply, sans I/O: numbers on the wire, weak validators, short 206s and
``*`` totals (RFC 9110)."""

from __future__ import annotations

import pytest
from freight.engine.http.head import Head, HeadHeaders
from freight.engine.http.validate import (
    UnknownSize,
    Validators,
    content_length,
    retry_after_seconds,
    validate,
)
from freight.errors import FileChangedError, ProtocolViolation, RangeError
from hypothesis import given
from hypothesis import strategies as st

URL = "http://files.test/f.bin"


def head(status: int, **fields: str) -> Head:
    pairs = [(k.replace("_", "-").encode(), v.encode("utf-8")) for k, v in fields.items()]
    return Head(status, "", HeadHeaders(pairs), URL)


# -- numbers: ASCII digits only, never an internal error ---------------------------------

# Text that is not 1*DIGIT of ASCII: Unicode digits ("²", "٣", "５"), signs, underscores,
# spaces inside, hex, or too many digits.
NOT_A_NUMBER = st.one_of(
    st.text(min_size=1, max_size=30).filter(
        lambda t: not (t.strip().isascii() and t.strip().isdigit())
    ),
    st.sampled_from(["²", "-1", "+5", "1_000", "0x10", "٣", "５", "1 2", "-0"]),
    st.integers(20, 6000).map(lambda n: "9" * n),
)


@given(NOT_A_NUMBER)
def test_a_bad_content_length_is_a_protocol_violation(value: str) -> None:
    if "," in value:  # a list: each member is checked
        return
    for status in (200, 206):
        fields = {"content_length": value}
        if status == 206:
            fields["content_range"] = "bytes 0-9/10"
        with pytest.raises(ProtocolViolation):
            validate(head(status, **fields), 0, None, None, None)


@given(NOT_A_NUMBER.filter(lambda v: "-" not in v and "/" not in v and v.strip()))
def test_a_bad_content_range_is_a_protocol_violation(value: str) -> None:
    shown_ranges = [f"bytes {value}-9/10", f"bytes 0-{value}/10"]
    if value.strip() != "*":  # RFC 9110 §14.4: "*" is a valid complete-length (unknown)
        shown_ranges.append(f"bytes 0-9/{value}")
    for shown in shown_ranges:
        with pytest.raises(ProtocolViolation):
            validate(head(206, content_range=shown), 0, None, None, None)


def test_lengths_as_servers_send_them() -> None:
    assert content_length(HeadHeaders([(b"Content-Length", b" 42 ")])) == 42
    assert content_length(HeadHeaders([(b"Content-Length", b"7, 7")])) == 7  # RFC 9110 §8.6
    with pytest.raises(ProtocolViolation):
        content_length(HeadHeaders([(b"Content-Length", b"7, 8")]))
    with pytest.raises(ProtocolViolation, match="impossible size"):
        content_length(HeadHeaders([(b"Content-Length", b"9999999999999999999")]))
    assert content_length(HeadHeaders([])) is None


@given(st.text(max_size=40) | st.integers(0, 5000).map(lambda n: "9" * n))
def test_retry_after_never_raises(value: str) -> None:
    seconds = retry_after_seconds(value)
    assert seconds is None or 0 <= seconds <= 86_400


# -- validators (RFC 9110 §8.8.3.2 weak comparison) ---------------------------------------


def test_weak_tags_never_go_in_if_range_but_are_compared() -> None:
    weak = Validators('W/"1"')
    assert weak.if_range() is None
    # RFC 9110 §13.1.5: no date in If-Range beside an entity tag (Apache takes a recent
    # date as weak and answers it by a 200 of the whole file), only without one.
    assert Validators('W/"1"', "Wed, 21 Oct 2015 07:28:00 GMT").if_range() is None
    assert Validators(None, "Wed, 21 Oct 2015 07:28:00 GMT").if_range() == (
        "Wed, 21 Oct 2015 07:28:00 GMT"
    )
    assert weak.conflicts_with(Validators('W/"2"'))
    assert not weak.conflicts_with(Validators('W/"1"'))
    assert not weak.conflicts_with(Validators('"1"'))  # weakly the same version
    assert Validators('"1"').conflicts_with(Validators('W/"2"'))


def test_a_changed_weak_tag_at_the_same_size_is_a_change() -> None:
    answer = head(206, content_range="bytes 5-9/10", etag='W/"2"')
    with pytest.raises(FileChangedError):
        validate(answer, 5, 10, Validators('W/"1"'), 10)


# -- the range asked, short 206s, "*" totals (RFC 9110 §14.4) -----------------------------


@given(st.integers(0, 1000), st.integers(1, 1000), st.integers(0, 2000), st.integers(1, 3000))
def test_a_206_is_the_range_asked_or_a_short_one(start, asked, served, total):
    end = start + asked
    got_end = start + served
    if got_end > total or served == 0 or end > total:
        return
    answer = head(206, content_range=f"bytes {start}-{got_end - 1}/{total}")
    if got_end > end:
        with pytest.raises(RangeError):
            validate(answer, start, end, None, total)
        return
    reply = validate(answer, start, end, None, total)
    assert (reply.start, reply.end, reply.size, reply.ranged) == (start, got_end, total, True)
    assert reply.short == (got_end < end)


def test_a_short_probe_keeps_the_true_total() -> None:
    reply = validate(head(206, content_range="bytes 0-1023/8192"), 0, None, None, None)
    assert reply.short and reply.end == 1024 and reply.size == 8192


def test_a_206_elsewhere_is_refused() -> None:
    with pytest.raises(RangeError):
        validate(head(206, content_range="bytes 1-9/10"), 0, 10, None, 10)


def test_a_star_total_is_never_a_size() -> None:
    with pytest.raises(UnknownSize):
        validate(head(206, content_range="bytes 0-1023/*"), 0, None, None, None)
    # A part of a file whose size is known: the range must still be the one asked.
    reply = validate(head(206, content_range="bytes 0-99/*"), 0, 100, None, 8192)
    assert reply.size == 8192 and not reply.short
    with pytest.raises(ProtocolViolation):  # a 206 to a request without Range
        validate(head(206, content_range="bytes 0-99/100"), 0, None, None, None, whole=True)


HEADER_TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40)


@given(
    st.integers(100, 599),
    st.dictionaries(
        st.sampled_from(["content-length", "content-range", "etag", "last-modified",
                         "retry-after", "content-encoding"]),
        HEADER_TEXT | st.from_regex(r"bytes [0-9*]{1,25}-[0-9]{0,25}/[0-9*]{1,25}", fullmatch=True),
    ),
    st.integers(0, 10**6), st.none() | st.integers(1, 10**6), st.none() | st.integers(0, 10**7),
)
def test_any_head_is_a_reply_or_a_freight_error(status, fields, start, length, size) -> None:
    # Whatever a server sends, validate answers with a Reply or an error of Freight's tree,
    # never an internal error; a 206 it accepts starts where asked.
    from freight.errors import FreightError

    end = None if length is None else start + length
    answer = head(status, **{k.replace("-", "_"): v for k, v in fields.items()})
    try:
        reply = validate(answer, start, end, Validators('W/"1"'), size)
    except FreightError:
        return
    if reply.ranged:
        assert reply.start == start and reply.end is not None
        assert end is None or reply.end <= end
        # A range past the end of the file is satisfied to its end (RFC 9110 §14.1.1).
        assert reply.size is not None
        wanted = reply.size if end is None else min(end, reply.size)
        assert reply.short == (reply.end < wanted)


def test_a_coded_range_past_the_files_end_is_a_range_error_not_a_violation() -> None:
    """A gzip-coded 206 counts coded bytes, so its end may pass the file's size: the engine
    must take it for a range it cannot splice (and fetch one stream), not fail the download
    as malformed — which it did whenever the last range was the one that came coded."""
    answer = head(206, content_range="bytes 300000-400052/400000", content_encoding="gzip")
    with pytest.raises(RangeError) as caught:
        validate(answer, 300000, 400000, None, 400000)
    assert not isinstance(caught.value, ProtocolViolation)
