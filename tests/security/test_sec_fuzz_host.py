"""A real ``freight-host`` process fed hostile stdin: random bytes, and random sequences of
frames (bad UTF-8, bad JSON, non-objects, JSON-RPC-shaped objects with random fields,
oversized requests). The oracle:

- stdout holds valid frames and nothing else (length ≤ 1 MiB, UTF-8 JSON, JSON-RPC 2.0
  responses with an integer error code and a message);
- exactly one response per frame that is not a notification, with that frame's id;
- the process exits by itself (0 at EOF, 1 after a fatal framing error), no traceback.

No daemon is contacted: ``daemon.json`` names a non-loopback URL, which the host refuses
without starting anything (freight_host.link.read_endpoint), so every request gets -32010.
The framing core itself is fuzzed in tests/native_host/test_host_framing.py; this covers the
process around it.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HOST = str(Path(sys.executable).with_name("freight-host"))
MAX_OUT = 1024 * 1024
FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def make_home(root: Path) -> Path:
    home = root / "host-home"
    (home / "state").mkdir(parents=True, exist_ok=True)
    # A daemon file that the host must refuse to use: never contacted, never started.
    (home / "state" / "daemon.json").write_text(json.dumps({"url": "ws://192.0.2.1:9/"}))
    return home


def run_host(home: Path, stdin: bytes, timeout: float = 30) -> tuple[int, bytes, str]:
    env = dict(os.environ, FREIGHT_HOME=str(home), HOME=str(home))
    env.pop("PYTHON_KEYRING_BACKEND", None)
    proc = subprocess.run([HOST, "chrome-extension://fuzz/"], input=stdin, env=env,
                          capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


def parse_frames(out: bytes) -> list[dict[str, Any]]:
    """Every frame on stdout; fails on anything that is not a valid response frame."""
    messages = []
    pos = 0
    while pos < len(out):
        assert len(out) - pos >= 4, f"a torn header at byte {pos}"
        (length,) = struct.unpack_from("=I", out, pos)
        assert length <= MAX_OUT, f"a frame of {length} bytes"
        payload = out[pos + 4 : pos + 4 + length]
        assert len(payload) == length, "a torn frame"
        message = json.loads(payload.decode("utf-8"))
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", message
        assert ("result" in message) != ("error" in message), message
        if "error" in message:
            error = message["error"]
            assert isinstance(error["code"], int) and isinstance(error["message"], str)
            assert isinstance(error["data"]["kind"], str)
        messages.append(message)
        pos += 4 + length
    return messages


def frame(payload: bytes) -> bytes:
    return struct.pack("=I", len(payload)) + payload


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)
ids = st.integers() | st.text(max_size=10) | st.none() | st.floats(allow_nan=False,
                                                                    allow_infinity=False)
methods = st.sampled_from(["add", "list", "host.hello", "host.nope", "shutdown", "", "x" * 300]) \
    | st.text(max_size=12) | st.integers() | st.none()


@st.composite
def rpc_objects(draw: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["jsonrpc"] = draw(st.sampled_from(["2.0", "1.0", 2]))
    if draw(st.integers(0, 3)):
        obj["id"] = draw(ids)
    if draw(st.integers(0, 4)):
        obj["method"] = draw(methods)
    if draw(st.booleans()):
        obj["params"] = draw(json_values)
    if draw(st.integers(0, 5)) == 0:
        obj["params"] = {"url": "x" * (1024 * 1024 + 10)}  # over the daemon's 1 MiB limit
    obj.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return obj


def is_request(obj: dict[str, Any]) -> bool:
    """The JSON-RPC 2.0 envelope the host checks (as the daemon does); others get -32600."""
    id_ = obj.get("id")
    good_id = "id" not in obj or isinstance(id_, str) and len(id_) <= 256 or (
        type(id_) is int and abs(id_) < 2**53)
    return obj.get("jsonrpc") == "2.0" and good_id and isinstance(obj.get("method"), str)


def deeply_nested(depth: int) -> bytes:
    return b"".join(b"[" if i % 2 else b'{"a":' for i in range(depth)) + b"0" + b"".join(
        b"]" if i % 2 else b"}" for i in reversed(range(depth)))


# A frame, and how many responses it must get.
@st.composite
def frames(draw: Any) -> tuple[bytes, int]:
    kind = draw(st.sampled_from(["rpc", "rpc", "rpc", "value", "bad_utf8", "bad_json", "empty",
                                 "deep"]))
    if kind == "rpc":
        obj = draw(rpc_objects())
        # A request is answered when it has an id; anything else that is not one, always.
        return frame(json.dumps(obj).encode()), int("id" in obj or not is_request(obj))
    if kind == "deep":  # more than 64 levels: refused before it is parsed
        return frame(deeply_nested(draw(st.integers(65, 200_000)))), 1
    if kind == "value":
        value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return frame(json.dumps(value).encode()), 1
    if kind == "bad_utf8":
        return frame(b'{"id": 1, "method": "\xff\xfe"}'), 1
    if kind == "bad_json":
        text = draw(st.sampled_from(["{", "NaN", "[1,", '{"a":Infinity}', "nul", "{}}"]))
        return frame(text.encode()), 1
    return frame(b""), 1


@FUZZ
@given(items=st.lists(frames(), min_size=1, max_size=25), cut=st.booleans())
def test_random_frame_sequences_get_exactly_one_valid_answer_each(
    tmp_path: Path, items: list[tuple[bytes, int]], cut: bool
) -> None:
    home = make_home(tmp_path)
    stdin = b"".join(data for data, _ in items)
    if cut:  # stdin closes in the middle of one more frame
        stdin += struct.pack("=I", 100) + b'{"id": 1'
    code, out, err = run_host(home, stdin)
    assert code == 0, err
    assert "Traceback" not in err
    answers = parse_frames(out)
    assert len(answers) == sum(n for _, n in items)
    for answer in answers:
        assert answer["error"]["code"] in (-32700, -32600, -32601, -32602, -32010), answer
    assert not (home / "state" / "daemon.lock").exists()  # nothing was started


@FUZZ
@given(data=st.binary(min_size=1, max_size=4096))
def test_random_bytes_on_stdin_never_reach_stdout_as_anything_but_frames(
    tmp_path: Path, data: bytes
) -> None:
    home = make_home(tmp_path)
    code, out, err = run_host(home, data)
    assert code in (0, 1), err
    assert "Traceback" not in err
    answers = parse_frames(out)
    if code == 1:  # a fatal framing error is answered before the host leaves
        assert answers and answers[-1]["error"]["data"].get("fatal") is True


def test_a_huge_stream_of_tiny_garbage_frames_is_answered_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    """20,000 bad frames in one write: each answered, the process neither stalls nor dies."""
    home = make_home(tmp_path)
    stdin = frame(b"{") * 20_000
    code, out, err = run_host(home, stdin, timeout=60)
    assert code == 0, err
    answers = parse_frames(out)
    assert len(answers) == 20_000
    assert all(a["error"]["data"]["reason"] == "invalid_json" for a in answers)


# Each frame the host cannot decode, and the error code it must get (id null: unreadable).
UNDECODABLE = [
    (b'{"jsonrpc":"2.0","id":1,"method":"\xff"}', -32700),  # not UTF-8
    (b"{not json", -32700),
    (b"", -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"n":NaN}}', -32700),
    (b"[Infinity]", -32700),
    (b"[" * 100_000 + b"]" * 100_000, -32700),  # once a RecursionError that killed the host
    (deeply_nested(100_000), -32700),
    (b"[" * 100_000, -32700),
    (b"7", -32600),
    (b"null", -32600),
    (b'"host.hello"', -32600),
    (b"{}", -32600),
    (b'{"jsonrpc":"2.0","method":["host.hello"]}', -32600),
    (b'{"method":"host.hello"}', -32600),
    (b'{"jsonrpc":"2.0","id":{"x":1},"method":"host.hello"}', -32600),
]


def test_each_frame_the_host_cannot_decode_is_answered_and_the_next_one_served(
    tmp_path: Path,
) -> None:
    """One host process: every undecodable frame, each followed by a host.hello."""
    home = make_home(tmp_path)
    stdin = b"".join(
        frame(bad) + frame(json.dumps({"jsonrpc": "2.0", "id": f"hello-{i}",
                                       "method": "host.hello"}).encode())
        for i, (bad, _) in enumerate(UNDECODABLE))
    code, out, err = run_host(home, stdin, timeout=60)
    assert code == 0, err
    assert "Traceback" not in err
    answers = parse_frames(out)
    assert len(answers) == 2 * len(UNDECODABLE)
    for i, (_, expected) in enumerate(UNDECODABLE):
        error, hello = answers[2 * i], answers[2 * i + 1]
        assert error["id"] is None and error["error"]["code"] == expected, (i, error)
        # The hello after it is served as usual: no daemon here, so -32010 with its id.
        assert hello["id"] == f"hello-{i}" and hello["error"]["code"] == -32010, (i, hello)
