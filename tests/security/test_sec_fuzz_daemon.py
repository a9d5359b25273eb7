"""Random frames over a real WebSocket to a real ``freight daemon``: it answers each one as the
sans-I/O core (api.parse) says it must, stays up, and its database does not change.

The daemon engineer's tests fuzz api.parse itself; this covers the process around it: the
server's reader loop, binary frames, ordering, and the store. Frames that would be valid
requests for a method that changes state are not sent (they would be allowed to change it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from freight import rpc
from freight.daemon import protocol as api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from secdaemon import DaemonProcess, database_dump

READ_ONLY = {"version", "status", "list", "get", "get_settings", "subscribe"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("fuzz-daemon") / "home").start()
    yield proc
    proc.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=4),
    max_leaves=15,
)
param_names = st.sampled_from(["url", "id", "ids", "dir", "name", "headers", "cookies",
                               "settings", "limit", "global_limit", "to", "states", "offset",
                               "checksum", "connections", "delete_file", "events"])


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        msg["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2.0, None]))
    if draw(st.integers(0, 4)):
        msg["id"] = draw(st.integers(-(2**60), 2**60) | st.text(max_size=300) | st.none()
                         | st.booleans() | st.floats(allow_nan=False, allow_infinity=False))
    if draw(st.integers(0, 9)):
        msg["method"] = draw(st.sampled_from(sorted(api.METHODS)) | st.text(max_size=20)
                             | st.integers())
    if draw(st.integers(0, 3)):
        msg["params"] = draw(st.dictionaries(param_names, json_values, max_size=4)
                             | json_values)
    if draw(st.integers(0, 9)) == 0:
        msg[draw(st.text(max_size=5))] = draw(json_values)
    return msg


@st.composite
def frames(draw: Any) -> str | bytes:
    kind = draw(st.sampled_from(["request"] * 6 + ["json", "text", "bytes", "deep"]))
    if kind == "request":
        text = json.dumps(draw(requests()))
    elif kind == "json":
        text = json.dumps(draw(json_values))
    elif kind == "text":
        text = draw(st.text(max_size=200))
    elif kind == "deep":
        depth = draw(st.integers(100, 100_000))
        text = "[" * depth + "]" * depth
    else:
        return draw(st.binary(max_size=200))
    if draw(st.integers(0, 5)) == 0:
        return text.encode("utf-8", "surrogatepass")  # the same, as a binary frame
    return text


def is_deep(frame: str | bytes) -> bool:
    return len(frame) > 150 and frame[:100] in ("[" * 100, b"[" * 100)


def expected(frame: str | bytes) -> api.Reply | api.Call | None:
    parsed = api.parse(frame)
    if isinstance(parsed, api.Call) and parsed.method not in READ_ONLY:
        return None  # a valid state-changing request: not ours to send
    return parsed


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(frames(), min_size=1, max_size=20))
def test_random_frames_get_the_answers_the_protocol_promises(
    daemon: DaemonProcess, batch: list[str | bytes]
) -> None:
    db = daemon.home / "freight.db"
    before = database_dump(db)
    with daemon.connect() as ws:
        for frame in batch:
            want = expected(frame)
            if want is None:
                continue
            ws.send(frame)
            if isinstance(want, api.Call) and not want.wants_reply:
                continue
            while True:
                reply = json.loads(ws.recv(timeout=10))
                if "method" not in reply:  # skip event notifications after a subscribe
                    break
            if isinstance(want, api.Reply) and is_deep(frame):
                # Whether json hits its recursion limit depends on the caller's stack depth:
                # either way the answer is a well-formed error without an id.
                assert reply["id"] is None and reply["error"]["code"] in (-32700, -32600)
            elif isinstance(want, api.Reply):
                assert reply == want.message
            else:
                assert reply["id"] == want.id
                assert ("result" in reply) != ("error" in reply)
                if "error" in reply:
                    assert reply["error"]["code"] == rpc.NOT_FOUND  # get of a missing id
        # The connection still works after the batch.
        assert daemon.call(ws, "version", id_=987654)["result"]["protocol"] == 1
    assert daemon.alive()
    assert database_dump(db) == before


def test_the_fuzzed_daemon_logged_no_internal_error(daemon: DaemonProcess) -> None:
    """Runs after the fuzz above (same module daemon): no bug surfaced as -32603."""
    log = (daemon.home / "logs" / "freight.log").read_text(errors="replace")
    assert "internal error" not in log
    assert "Traceback" not in log
    assert daemon.alive()
