"""The native messaging codec, fed bytes directly: no process, no pipe."""

from __future__ import annotations

import json
import struct

import pytest
from freight_host.framing import (
    DEFAULT_MAX_INCOMING,
    HOST_TO_BROWSER_MAX,
    FrameDecoder,
    FramingError,
    MessageTooLarge,
    encode,
    frame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=50)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=20,
)


def header(n: int) -> bytes:
    return struct.pack("=I", n)


def test_header_is_native_byte_order_length() -> None:
    data = encode({"a": 1})
    assert data[4:] == b'{"a":1}'
    assert int.from_bytes(data[:4], "little" if struct.pack("=I", 1)[0] else "big") == 7


def test_split_frames_and_several_frames_in_one_read() -> None:
    stream = encode({"id": 1}) + encode("two") + encode([3])
    d = FrameDecoder()
    assert d.feed(stream[:2]) == []
    assert d.feed(stream[2:9]) == []
    assert d.feed(stream[9:]) == [{"id": 1}, "two", [3]]
    assert d.buffered == 0 and d.eof() is None


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=8), st.lists(st.integers(1, 64), min_size=1))
def test_any_chunking_yields_the_same_messages(messages: list[object], cuts: list[int]) -> None:
    stream = b"".join(encode(m) for m in messages)
    d = FrameDecoder()
    got: list[object] = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got += d.feed(stream[pos : pos + step])
        pos += step
        i += 1
    assert got == messages
    assert d.eof() is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises_and_every_item_is_a_value_or_error(data: bytes) -> None:
    d = FrameDecoder(max_size=1000)
    items = d.feed(data)
    for item in items:
        if isinstance(item, FramingError):
            assert item.kind in {"too_large", "invalid_utf8", "invalid_json", "too_deep"}
    end = d.eof()
    assert end is None or (end.fatal and end.kind == "truncated")


def test_invalid_utf8_is_reported_and_the_next_frame_still_decodes() -> None:
    d = FrameDecoder()
    items = d.feed(frame(b'"\xff\xfe"') + encode({"ok": True}))
    assert isinstance(items[0], FramingError) and items[0].kind == "invalid_utf8"
    assert not items[0].fatal
    assert items[1] == {"ok": True}


@pytest.mark.parametrize("payload", [b"{", b"NaN", b"[1,]", b"", b"Infinity", b"{'a': 1}"])
def test_invalid_json_is_reported_and_decoding_goes_on(payload: bytes) -> None:
    d = FrameDecoder()
    items = d.feed(frame(payload) + encode(7))
    assert isinstance(items[0], FramingError) and items[0].kind == "invalid_json"
    assert items[1] == 7 and not d.broken


def test_length_over_limit_is_fatal_and_the_decoder_stops() -> None:
    d = FrameDecoder(max_size=100)
    good = encode({"x": 1})
    items = d.feed(good + header(101) + b"x" * 101 + encode(2))
    assert items[0] == {"x": 1}
    err = items[1]
    assert isinstance(err, FramingError) and err.fatal and err.kind == "too_large"
    assert "101" in str(err) and "100" in str(err)
    assert len(items) == 2 and d.broken
    assert d.feed(encode(3)) == [] and d.eof() is None


def test_text_written_to_the_pipe_is_fatal_at_the_default_limit() -> None:
    # "Hello" read as a length is ~1.8e9 (little endian) or ~1.2e9 (big endian).
    items = FrameDecoder().feed(b"Hello world\n")
    assert len(items) == 1 and isinstance(items[0], FramingError) and items[0].fatal


def test_exactly_the_limit_is_accepted() -> None:
    payload = b'"' + b"a" * (DEFAULT_MAX_INCOMING - 2) + b'"'
    assert FrameDecoder().feed(frame(payload, limit=len(payload))) == ["a" * (len(payload) - 2)]


def test_eof_mid_frame_and_mid_header() -> None:
    d = FrameDecoder()
    d.feed(encode({"a": 1})[:-1])
    err = d.eof()
    assert err is not None and err.kind == "truncated" and "pending" in str(err)
    d2 = FrameDecoder()
    d2.feed(b"\x01\x00")
    assert d2.eof() is not None


def test_encode_refuses_over_one_megabyte_and_accepts_at_it() -> None:
    body = "a" * (HOST_TO_BROWSER_MAX - 2)
    assert len(encode(body)) == HOST_TO_BROWSER_MAX + 4
    with pytest.raises(MessageTooLarge) as info:
        encode(body + "a")
    assert info.value.size == HOST_TO_BROWSER_MAX + 1


def test_encode_refuses_nan_and_keeps_unicode_and_lone_surrogates() -> None:
    with pytest.raises(ValueError):
        encode({"x": float("nan")})
    assert encode("é")[4:] == '"é"'.encode()
    data = encode("\ud800")
    assert FrameDecoder().feed(data) == ["\ud800"]
    json.loads(data[4:].decode("ascii"))


def test_limit_must_be_sane() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_size=0)
    with pytest.raises(ValueError):
        FrameDecoder(max_size=65 * 1024 * 1024)
