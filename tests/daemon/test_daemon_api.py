"""The sans-I/O JSON-RPC codec: fuzzed, and held to docs/PROTOCOL.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

from freight import rpc
from freight.daemon import protocol as api
from freight.errors import IllegalTransition, InputError, NotFound, ShuttingDown, StoreError
from hypothesis import given, settings
from hypothesis import strategies as st

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
CODES = {rpc.PARSE_ERROR, rpc.INVALID_REQUEST, rpc.METHOD_NOT_FOUND, rpc.INVALID_PARAMS}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
param_names = st.sampled_from(
    sorted({n for m in api.METHODS.values() for n in (*m.required, *m.optional)} | {"id", "ids"})
)
requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2])},
    optional={
        "id": st.integers() | st.text(max_size=8) | st.none() | st.floats(),
        "method": st.sampled_from(sorted(api.METHODS)) | st.text(max_size=10),
        "params": st.dictionaries(param_names, json_values, max_size=5) | json_values,
        "extra": json_values,
    },
)


def check_reply(reply: api.Reply) -> dict:
    message = json.loads(reply.encode())
    assert message["jsonrpc"] == "2.0"
    assert set(message) == {"jsonrpc", "id", "error"}
    error = message["error"]
    assert error["code"] in CODES
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["data"]["kind"], str)
    return message


@settings(max_examples=600, deadline=None)
@given(requests)
def test_any_request_object_gets_a_call_or_a_well_formed_error(msg: dict) -> None:
    parsed = api.parse(json.dumps(msg))
    if isinstance(parsed, api.Reply):
        check_reply(parsed)
    else:
        assert msg["jsonrpc"] == "2.0" and parsed.method in api.METHODS
        # What the handler gets holds only known params, already checked.
        spec = api.METHODS[parsed.method]
        assert set(parsed.params) <= {*spec.required, *spec.optional, "ids"}
        assert set(spec.required) <= set(parsed.params)
        json.dumps(parsed.params)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_get_a_well_formed_error_or_a_call(raw: bytes) -> None:
    parsed = api.parse(raw)
    if isinstance(parsed, api.Reply):
        check_reply(parsed)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(api.METHODS)), json_values)
def test_params_validation_never_raises_anything_but_input_error(method: str, params) -> None:
    try:
        api.check_params(method, params)
    except InputError as exc:
        assert exc.message


def test_normalisation() -> None:
    call = api.parse(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "add", "params": {
        "url": "https://127.0.0.1/x", "checksum": "SHA256=" + "A" * 64,
        "cookies": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}}))
    assert isinstance(call, api.Call)
    assert call.params["checksum"] == "sha256:" + "a" * 64
    assert call.params["cookies"] == "a=1; b=2"
    call = api.parse('{"jsonrpc": "2.0", "id": 2, "method": "pause", "params": {"id": 4}}')
    assert isinstance(call, api.Call) and call.params == {"ids": [4]}
    call = api.parse('{"jsonrpc": "2.0", "method": "version"}')
    assert isinstance(call, api.Call) and not call.wants_reply
    reply = api.parse('{"jsonrpc": "2.0", "id": 1, "method": "get", "params": {"id": NaN}}')
    assert isinstance(reply, api.Reply) and reply.message["error"]["code"] == rpc.PARSE_ERROR


def test_error_mapping() -> None:
    call = api.Call(5, "get", {"id": 1})
    cases = [
        (NotFound("no download with id 1", id=1), rpc.NOT_FOUND, "not_found"),
        (IllegalTransition("no", state="removed"), rpc.ILLEGAL_TRANSITION, "illegal_transition"),
        (InputError("bad"), rpc.INVALID_PARAMS, "invalid_input"),
        (ShuttingDown("bye"), rpc.SHUTTING_DOWN, "shutting_down"),
        (StoreError("disk"), rpc.INTERNAL_ERROR, "store"),
        (ZeroDivisionError("bug"), rpc.INTERNAL_ERROR, "internal"),
    ]
    for exc, code, kind in cases:
        message = json.loads(api.failure(call, exc).encode())
        assert message["id"] == 5
        assert message["error"]["code"] == code and message["error"]["data"]["kind"] == kind
    bug = json.loads(api.failure(call, ZeroDivisionError("secret detail")).encode())
    assert "secret detail" not in json.dumps(bug)
    data = json.loads(api.failure(call, NotFound("x", id=1)).encode())["error"]["data"]
    assert data == {"id": 1, "kind": "not_found"}


def test_every_method_event_and_code_is_documented() -> None:
    doc = PROTOCOL_MD.read_text()
    for method in api.METHODS:
        assert re.search(rf"^\| `{re.escape(method)}`", doc, re.M), f"method {method}"
        for param in (*api.METHODS[method].required, *api.METHODS[method].optional):
            assert f"`{param}" in doc, f"param {method}.{param}"
    for event in rpc.EVENTS:
        assert re.search(rf"^\| `{re.escape(event)}`", doc, re.M), f"event {event}"
    for code in (rpc.PARSE_ERROR, rpc.INVALID_REQUEST, rpc.METHOD_NOT_FOUND, rpc.INVALID_PARAMS,
                 rpc.INTERNAL_ERROR, rpc.NOT_FOUND, rpc.ILLEGAL_TRANSITION, rpc.SHUTTING_DOWN):
        assert f"| {code} |" in doc, f"code {code}"
    assert f"version `{rpc.PROTOCOL_VERSION}`" in doc or f"version {rpc.PROTOCOL_VERSION}" in doc


def test_an_error_reply_never_carries_a_credential() -> None:
    """Whatever raised it, an error's message passes the one redaction point on its way out:
    a Freight error that quotes a request head or a URL with userinfo answers without them."""
    call = api.parse(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "version", "params": {}}))
    assert isinstance(call, api.Call)
    for exc in (
        InputError("the server refused GET /x\r\nCookie: sid=hunter2-cookie\r\nHost: a"),
        StoreError("cannot save https://alice:hunter2-cookie@example.com/f"),
    ):
        error = json.loads(api.failure(call, exc).encode())["error"]
        assert "hunter2-cookie" not in error["message"], error
        assert "<redacted>" in error["message"]
