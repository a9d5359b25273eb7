"""Frames the host cannot decode: each gets an error frame and the host serves the next one.

A real ``freight-host`` on pipes (host_support.py) is fed one bad frame and a good
``host.hello`` in the same write; the bad frame gets -32700 (not decodable) or -32600 (not a
JSON-RPC request) with ``id`` null unless a valid id could be read, the hello its normal
answer, and the process is still alive. Only a length over the limit ends the stream
(test_host_relay.py). The sans-I/O decoder is fuzzed below with bracket-heavy bytes and
nesting up to 100,000 deep.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from freight_host.framing import MAX_DEPTH, FrameDecoder, FramingError, encode, frame
from host_support import StandInDaemon
from hypothesis import given, settings
from hypothesis import strategies as st

DEEP = 100_000


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """``depth`` levels, alternating arrays and objects."""
    opens = b"".join(b"[" if i % 2 == 0 else b'{"k":' for i in range(depth))
    closes = b"".join(b"]" if i % 2 == 0 else b"}" for i in reversed(range(depth)))
    return opens + inner + closes


def hello_with_params(total_depth: int) -> bytes:
    """A host.hello request whose whole text nests ``total_depth`` levels (the object is 1)."""
    params = nested(total_depth - 3, b"{}")
    return b'{"jsonrpc":"2.0","id":"deep","method":"host.hello","params":{"x":' + params + b"}}"


PARSE, INVALID = -32700, -32600
# (name, payload, expected code, expected id, expected data.reason or None)
BAD_FRAMES: list[tuple[str, bytes, int, Any, str | None]] = [
    ("bad_utf8", b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', PARSE, None, "invalid_utf8"),
    ("truncated_utf8", b'"\xe2\x82"', PARSE, None, "invalid_utf8"),
    ("not_json", b"{not json", PARSE, None, "invalid_json"),
    ("empty", b"", PARSE, None, "invalid_json"),
    ("trailing", b'{"jsonrpc":"2.0","id":1,"method":"host.hello"}}', PARSE, None,
     "invalid_json"),
    ("nan", b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":NaN}}', PARSE, None,
     "invalid_json"),
    ("infinity", b'{"jsonrpc":"2.0","id":1,"method":"echo","params":[Infinity]}', PARSE, None,
     "invalid_json"),
    ("minus_infinity", b"-Infinity", PARSE, None, "invalid_json"),
    ("arrays_100k_deep", b"[" * DEEP + b"]" * DEEP, PARSE, None, "too_deep"),
    ("objects_100k_deep", b'{"a":' * DEEP + b"1" + b"}" * DEEP, PARSE, None, "too_deep"),
    ("mixed_100k_deep", nested(DEEP), PARSE, None, "too_deep"),
    ("unclosed_100k_deep", b"[" * DEEP, PARSE, None, "too_deep"),
    ("request_one_level_too_deep", hello_with_params(MAX_DEPTH + 1), PARSE, None, "too_deep"),
    ("number", b"42", INVALID, None, None),
    ("string", b'"host.hello"', INVALID, None, None),
    ("null", b"null", INVALID, None, None),
    ("true", b"true", INVALID, None, None),
    ("batch", b'[{"jsonrpc":"2.0","id":1,"method":"host.hello"}]', INVALID, None, None),
    ("empty_array", b"[]", INVALID, None, None),
    ("empty_object", b"{}", INVALID, None, None),
    ("no_method", b'{"jsonrpc":"2.0","id":5}', INVALID, 5, None),
    ("no_method_no_id", b'{"jsonrpc":"2.0","params":{}}', INVALID, None, None),
    ("method_not_a_string", b'{"jsonrpc":"2.0","method":5}', INVALID, None, None),
    ("no_jsonrpc", b'{"id":6,"method":"host.hello"}', INVALID, 6, None),
    ("jsonrpc_1", b'{"jsonrpc":"1.0","id":"a","method":"version"}', INVALID, "a", None),
    ("id_an_object", b'{"jsonrpc":"2.0","id":{"a":1},"method":"host.hello"}', INVALID, None,
     None),
    ("id_a_fraction", b'{"jsonrpc":"2.0","id":1.5,"method":"version"}', INVALID, None, None),
    ("id_a_bool", b'{"jsonrpc":"2.0","id":true,"method":"version"}', INVALID, None, None),
    ("id_null", b'{"jsonrpc":"2.0","id":null,"method":"version"}', INVALID, None, None),
    ("id_huge", b'{"jsonrpc":"2.0","id":' + b"9" * 30 + b',"method":"version"}', INVALID,
     None, None),
]


@pytest.mark.parametrize(("payload", "code", "id_", "reason"),
                         [case[1:] for case in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES])
def test_a_frame_the_host_cannot_decode_is_answered_and_the_next_is_served(
        stand_in: StandInDaemon, spawn_host: Any, payload: bytes, code: int, id_: Any,
        reason: str | None) -> None:
    host = spawn_host()
    hello = {"jsonrpc": "2.0", "id": "hello-after", "method": "host.hello"}
    host.send_raw(frame(payload, limit=len(payload)) + encode(hello))
    error = host.recv()
    assert "result" not in error, error
    assert error["id"] == id_ and error["error"]["code"] == code, error
    if reason is not None:
        assert error["error"]["data"]["reason"] == reason
        assert error["error"]["data"]["fatal"] is False
    answer = host.recv()
    assert answer["id"] == "hello-after"
    assert answer["result"]["daemon"] == f"ws://127.0.0.1:{stand_in.port}/"
    assert host.proc.poll() is None, host.stderr()
    # Nothing that could not be read as a request reached the daemon.
    assert stand_in.requests == []
    host.close_stdin()
    assert host.wait() == 0
    assert "Traceback" not in host.stderr()
    assert len(host.assert_stdout_only_frames()) == 2


def test_a_request_nested_exactly_to_the_limit_is_served(
        stand_in: StandInDaemon, spawn_host: Any) -> None:
    host = spawn_host()
    host.send_raw(frame(hello_with_params(MAX_DEPTH)))
    answer = host.recv()
    assert answer["id"] == "deep" and "result" in answer, answer


# -- the sans-I/O decoder --------------------------------------------------------------------

pieces = st.sampled_from([b"[", b"]", b"{", b"}", b'"k":', b",", b"1", b'"', b"\\", b'\\"',
                          b"NaN", b"Infinity", b"null", b" ", b"\xff", b"\xe2\x82", b"\x00"])
payloads = st.one_of(
    st.binary(max_size=200),
    st.lists(pieces, max_size=300).map(b"".join),
    st.builds(lambda n, tail: b"[" * n + tail, st.integers(0, 5000), st.binary(max_size=20)),
)


def check_items(items: list[Any]) -> None:
    for item in items:
        if isinstance(item, FramingError):
            assert item.kind in {"too_large", "invalid_utf8", "invalid_json", "too_deep"}
            assert item.fatal == (item.kind == "too_large")


@settings(max_examples=300, deadline=None)
@given(st.lists(payloads, max_size=6), st.binary(max_size=64), st.integers(1, 97))
def test_any_bytes_give_messages_or_framing_errors_never_an_exception(
        frames: list[bytes], garbage: bytes, step: int) -> None:
    stream = b"".join(frame(p, limit=1 << 20) for p in frames) + garbage
    d = FrameDecoder(max_size=64 * 1024)
    items: list[Any] = []
    for pos in range(0, len(stream), step):
        items += d.feed(stream[pos:pos + step])
    check_items(items)
    # Every whole frame before the garbage gave exactly one item.
    assert len(items) >= len(frames)
    end = d.eof()
    assert end is None or (end.fatal and end.kind == "truncated")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, DEEP), st.sampled_from(["arrays", "objects", "mixed", "unclosed"]))
def test_deep_nesting_is_a_framing_error_never_a_recursion_error(depth: int, shape: str) -> None:
    if shape == "arrays":
        payload = b"[" * depth + b"]" * depth
    elif shape == "objects":
        payload = b'{"a":' * depth + b"0" + b"}" * depth
    elif shape == "mixed":
        payload = nested(depth)
    else:
        payload = b"[" * depth
    d = FrameDecoder()
    items = d.feed(frame(payload) + encode({"after": True}))
    assert len(items) == 2 and items[1] == {"after": True}
    item = items[0]
    if shape == "unclosed":
        assert isinstance(item, FramingError) and not item.fatal
    elif depth > MAX_DEPTH:
        assert isinstance(item, FramingError) and item.kind == "too_deep" and not item.fatal
    else:
        assert not isinstance(item, FramingError)
        assert json.dumps(item, separators=(",", ":")).encode() == payload


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"s": "[" * 10_000 + '\\"{' * 1000, "t": ["]]]", "{{{"]})
    assert FrameDecoder().feed(frame(text.encode())) == [json.loads(text)]
