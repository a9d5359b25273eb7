"""A real freight-host process on pipes, relaying to a real WebSocket JSON-RPC server."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

from freight import handshake
from freight_host.framing import encode, frame
from host_support import StandInDaemon


def test_hello_and_version_are_relayed_after_the_handshake(stand_in: StandInDaemon,
                                                           spawn_host: Any):
    host = spawn_host()
    hello = host.call("host.hello")
    assert hello["result"] == {"host": "0.1.0", "daemon": f"ws://127.0.0.1:{stand_in.port}/",
                               "protocol": 1}
    version = host.call("version", id_="v-1")
    assert version["result"]["protocol"] == 1 and version["id"] == "v-1"
    # One challenge, one upgrade with a proof for it; the token itself never went out.
    assert len(stand_in.challenges) == 1 and len(stand_in.auth_headers) == 1
    creds = handshake.parse_authorization(stand_in.auth_headers[0] or "")
    assert creds.challenge == stand_in.challenges[0]["nonce"]
    assert handshake.verify_client_proof(stand_in.token, creds.nonce, creds.challenge,
                                         stand_in.port, creds.proof)
    assert stand_in.token not in str(stand_in.auth_headers)
    assert stand_in.requests[-1] == {"jsonrpc": "2.0", "id": "v-1", "method": "version"}
    host.close_stdin()
    assert host.wait() == 0
    assert len(host.assert_stdout_only_frames()) == 2


def test_requests_and_errors_pass_unchanged_and_notifications_are_forwarded(
        stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    params = {"url": "https://example.invalid/é", "n": [1, 2.5, None, True]}
    assert host.call("echo", params)["result"] == params
    missing = host.call("nope")
    assert missing["error"]["code"] == -32601
    sub = host.call("subscribe", {})
    assert sub["result"] == {"subscribed": ["download.added"]}
    event = host.recv()
    assert event["method"] == "download.added" and event["params"]["download"]["id"] == 1
    # A notification from the extension (no id) is relayed and gets no answer.
    host.send({"jsonrpc": "2.0", "method": "echo", "params": {}})
    assert host.call("version")["result"]["version"] == "0.1.0"
    assert stand_in.requests[-2] == {"jsonrpc": "2.0", "method": "echo", "params": {}}


def test_bad_frames_get_an_error_frame_and_the_host_keeps_serving(
        stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    host.send_raw(frame(b"{not json"))
    err = host.recv()
    assert err["id"] is None and err["error"]["code"] == -32700
    assert err["error"]["data"]["reason"] == "invalid_json"
    host.send_raw(frame(b'{"a": "\xff"}'))
    assert host.recv()["error"]["data"]["reason"] == "invalid_utf8"
    host.send([{"jsonrpc": "2.0", "id": 1, "method": "version"}])
    assert "batches" in host.recv()["error"]["message"]
    host.send("hello")
    assert host.recv()["error"]["code"] == -32600
    assert host.call("host.nope")["error"]["code"] == -32601
    assert host.call("version")["result"]["protocol"] == 1
    host.close_stdin()
    assert host.wait() == 0
    host.assert_stdout_only_frames()


def test_a_length_over_the_limit_is_answered_then_the_host_exits(
        stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    assert host.call("version")["result"]
    host.send_raw(struct.pack("=I", 5 * 1024 * 1024) + b"{}")
    err = host.recv()
    assert err["error"]["data"] == {"kind": "parse_error", "reason": "too_large", "fatal": True}
    assert host.wait() == 1
    host.assert_stdout_only_frames()
    assert "Traceback" not in host.stderr()


def test_text_on_stdin_is_refused_cleanly(spawn_host: Any):
    host = spawn_host()
    host.send_raw(b"GET / HTTP/1.1\r\n\r\n")
    assert host.recv()["error"]["data"]["fatal"] is True
    assert host.wait() == 1
    host.assert_stdout_only_frames()


def test_eof_mid_frame_exits_cleanly(stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    host.send_raw(encode({"jsonrpc": "2.0", "id": 1, "method": "version"})[:-3])
    host.close_stdin()
    assert host.wait() == 0
    assert host.stdout_bytes == b""
    assert "Traceback" not in host.stderr()


def test_wrong_token_gives_daemon_unavailable_with_the_reason(
        freight_home: Path, spawn_host: Any):
    daemon = StandInDaemon(freight_home, token="the-daemons-token").start()
    try:
        (freight_home / "secrets" / "api-token").write_text("an-old-token")
        host = spawn_host()
        answer = host.call("add", {"url": "https://example.invalid/a"})
        assert answer["error"]["code"] == -32010
        assert answer["error"]["data"]["kind"] == "daemon_unavailable"
        assert "token" in answer["error"]["data"]["reason"]
        assert host.call("host.hello")["error"]["code"] == -32010
        assert daemon.requests == []
    finally:
        daemon.stop()


def test_a_daemon_file_naming_another_host_is_never_contacted(
        freight_home: Path, spawn_host: Any):
    (freight_home / "state").mkdir()
    (freight_home / "state" / "daemon.json").write_text(json.dumps(
        {"pid": 1, "port": 80, "url": "ws://192.0.2.1:80/", "protocol": 1}))
    host = spawn_host()
    answer = host.call("version", timeout=10)
    assert answer["error"]["code"] == -32010
    assert "loopback" in answer["error"]["data"]["reason"]


def test_answers_too_large_for_the_browser_become_errors(
        stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    ok = host.call("big", {"size": 900_000})
    assert len(ok["result"]["blob"]) == 900_000
    too_big = host.call("big", {"size": 1_100_000})
    assert too_big["error"]["code"] == -32602
    assert too_big["error"]["data"]["reason"] == "response_too_large"
    # A too-large notification is dropped; the answer after it still arrives.
    assert host.call("big_event")["result"] == {"ok": True}
    assert not any(m.get("method") == "download.progress" for m in host.seen)
    host.close_stdin()
    assert host.wait() == 0
    host.assert_stdout_only_frames()


def test_requests_over_the_daemons_limit_are_refused_by_the_host(
        stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    answer = host.call("echo", {"blob": "y" * (1024 * 1024 + 10)})
    assert answer["error"]["code"] == -32602
    assert answer["error"]["data"]["reason"] == "request_too_large"
    assert all(r.get("method") != "echo" for r in stand_in.requests)
    assert host.call("version")["result"]


def test_a_dropped_connection_fails_the_request_in_flight_and_the_next_reconnects(
        stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    dropped = host.call("drop")
    assert dropped["error"]["code"] == -32010
    assert host.call("version")["result"]["protocol"] == 1
    assert len(stand_in.connections) == 2


def test_a_subscribed_host_reconnects_after_a_daemon_restart(
        freight_home: Path, stand_in: StandInDaemon, spawn_host: Any):
    host = spawn_host()
    assert host.call("subscribe", {"events": ["download.added"]})["result"]
    assert host.recv()["method"] == "download.added"
    port = stand_in.port
    stand_in.stop()
    assert host.recv() == {"jsonrpc": "2.0", "method": "host.daemon",
                           "params": {"connected": False}}
    time.sleep(0.3)
    again = StandInDaemon(freight_home, port=port).start()
    try:
        back = host.recv(timeout=15)
        assert back["method"] in ("host.daemon", "download.added")
        events = [back, host.recv(timeout=10)]
        assert {e["method"] for e in events} == {"host.daemon", "download.added"}
        # The host replayed the extension's subscription on the new connection.
        assert again.requests[0]["method"] == "subscribe"
        assert again.requests[0]["params"] == {"events": ["download.added"]}
        assert host.call("version")["result"]
    finally:
        again.stop()
