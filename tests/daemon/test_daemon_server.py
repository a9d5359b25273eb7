"""The real daemon process: every refusal before the upgrade, size limits, auth by the
handshake's proof of the token (freight.handshake; a proof is good for one upgrade, so each
connection below asks for a fresh one)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from daemonproc import DaemonProcess
from freight.client import authorization
from freight.errors import AuthError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[2]


def raw_upgrade(port: int, headers: list[tuple[str, str]], path: str = "/") -> int:
    """Send a hand-made upgrade request (repeated headers allowed); return the HTTP status."""
    lines = [f"GET {path} HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = sock.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1])


def status_of(daemon: DaemonProcess, headers: dict[str, str], url: str | None = None) -> int:
    try:
        with connect(url or daemon.url, additional_headers=headers, proxy=None, open_timeout=5):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def proof(daemon: DaemonProcess) -> dict[str, str]:
    """A fresh Authorization header by the real handshake: good for one upgrade."""
    return {"Authorization": authorization(daemon.url, daemon.token, timeout=5)}


def test_refusals_before_the_upgrade(daemon: DaemonProcess) -> None:
    token = daemon.token
    assert status_of(daemon, proof(daemon)) == 101
    assert status_of(daemon, {}) == 401
    assert status_of(daemon, {"Authorization": "Bearer wrong"}) == 401
    assert status_of(daemon, {"Authorization": f"Bearer {token}"}) == 401  # bearer is gone
    assert status_of(daemon, {"Authorization": f"Basic {token}"}) == 401
    # A web page always sends its Origin: refused even with a valid proof.
    assert status_of(daemon, {**proof(daemon), "Origin": "https://evil.example"}) == 403
    assert status_of(daemon, {**proof(daemon), "Origin": "null"}) == 403
    other_extension = "chrome-extension://" + "a" * 32
    assert status_of(daemon, {**proof(daemon), "Origin": other_extension}) == 403
    # Freight's own extension (extension/ids.json) is on the allow-list.
    ids = json.loads((REPO / "extension" / "ids.json").read_text())
    assert status_of(daemon, {**proof(daemon),
                              "Origin": f"chrome-extension://{ids['chromium']}"}) == 101
    # DNS rebinding: the page's own host name arrives in Host.
    port = daemon.port

    def good() -> list[tuple[str, str]]:
        return list(proof(daemon).items())

    assert raw_upgrade(port, [("Host", f"evil.example:{port}"), *good()]) == 421
    assert raw_upgrade(port, [("Host", f"127.0.0.1:{port + 1}"), *good()]) == 421
    assert raw_upgrade(port, [("Host", "127.0.0.1"), *good()]) == 421
    assert raw_upgrade(port, [("Host", f"localhost:{port}"), *good()]) == 101
    # Repeated headers are refused, never a 500 from a header parser.
    assert raw_upgrade(port, [("Host", f"127.0.0.1:{port}"), ("Host", f"127.0.0.1:{port}"),
                              *good()]) == 421
    assert raw_upgrade(port, [("Host", f"127.0.0.1:{port}"), *good(), *good()]) == 401
    assert raw_upgrade(port, [("Host", f"127.0.0.1:{port}"), *good(),
                              ("Origin", "https://a.example"), ("Origin", "https://b.example")]
                       ) == 403
    assert raw_upgrade(port, [("Host", f"127.0.0.1:{port}"), *good()], path="/x") == 404
    # A proof made for another token is refused, and so is a replayed one.
    spent = good()
    assert raw_upgrade(port, [("Host", f"127.0.0.1:{port}"), *spent]) == 101
    assert raw_upgrade(port, [("Host", f"127.0.0.1:{port}"), *spent]) == 401
    # Host is checked before anything else, the token last.
    assert raw_upgrade(port, [("Host", "evil.example"), ("Origin", "https://e.example")]) == 421
    here = ("Host", f"127.0.0.1:{port}")
    assert raw_upgrade(port, [here, ("Origin", "https://e.example")]) == 403


def test_allowed_origins_setting(daemon: DaemonProcess) -> None:
    origin = "moz-extension://0b5f3c4e-8f42-4c1e-9a4e-6a2f7e9b1c11"
    assert status_of(daemon, {**proof(daemon), "Origin": origin}) == 403
    with daemon.client() as c:
        c.call("set_settings", settings={"allowed_origins": [origin + "/"]})
    assert status_of(daemon, {**proof(daemon), "Origin": origin}) == 101


def test_oversized_message_closes_with_1009_and_daemon_keeps_serving(
    daemon: DaemonProcess,
) -> None:
    with connect(daemon.url, additional_headers=proof(daemon), proxy=None, max_size=None) as ws:
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "add",
                          "params": {"url": "http://127.0.0.1/" + "a" * (1024 * 1024)}})
        ws.send(big)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1009
    with daemon.client() as c:
        assert c.call("list")["total"] == 0  # nothing was added
        assert c.call("version")["protocol"] == 1


def test_rotated_token_refuses_the_old_one(daemon: DaemonProcess) -> None:
    old = daemon.token
    stale_proof = proof(daemon)  # made with the old token, not used yet
    result = daemon.cli("token", "--rotate")
    assert result.returncode == 0, result.stderr
    new = result.stdout.strip()
    assert new != old and new == daemon.token
    # The daemon rereads the token when a client's key id differs, without a restart.
    assert status_of(daemon, proof(daemon)) == 101
    with pytest.raises(AuthError) as refused:
        authorization(daemon.url, old, timeout=5)
    assert "does not match the daemon's" in str(refused.value)
    assert status_of(daemon, stale_proof) == 401
    assert daemon.cli("token").stdout.strip() == new
    assert daemon.cli("ls").returncode == 0  # the CLI too, with the new token
    assert daemon.cli("status").returncode == 0


def test_json_rpc_errors_over_the_wire(daemon: DaemonProcess) -> None:
    with connect(daemon.url, additional_headers=proof(daemon), proxy=None) as ws:
        def ask(text: str) -> dict:
            ws.send(text)
            return json.loads(ws.recv(timeout=5))

        assert ask("{nope")["error"]["code"] == -32700
        assert ask("[]")["error"]["code"] == -32600
        assert ask('{"jsonrpc": "2.0", "id": 1}')["error"]["code"] == -32600
        assert ask('{"jsonrpc": "2.0", "id": 2, "method": "nope"}')["error"]["code"] == -32601
        reply = ask('{"jsonrpc": "2.0", "id": 3, "method": "get", "params": {"id": "x"}}')
        assert reply["id"] == 3 and reply["error"]["code"] == -32602
        assert reply["error"]["data"]["kind"] == "invalid_input"
        reply = ask('{"jsonrpc": "2.0", "id": 4, "method": "get", "params": {"id": 99}}')
        assert reply["error"]["code"] == -32001 and reply["error"]["data"]["kind"] == "not_found"
        # A notification (no id) gets no reply; the next request still does.
        ws.send('{"jsonrpc": "2.0", "method": "version"}')
        assert ask('{"jsonrpc": "2.0", "id": "s", "method": "version"}')["id"] == "s"
        ws.send(b'\xff\xfe')
        assert json.loads(ws.recv(timeout=5))["error"]["code"] == -32700


def test_a_browser_connection_cannot_set_what_runs_a_program(daemon: DaemonProcess) -> None:
    """`on_complete` runs a program as the user and `webhook` sends every completion away:
    set from the CLI, the tray or `freight settings`, never over a connection a browser made
    (an Origin header: the extension, or anything that took its place)."""
    ids = json.loads((REPO / "extension" / "ids.json").read_text())
    origin = f"chrome-extension://{ids['chromium']}"
    with connect(daemon.url, additional_headers={**proof(daemon), "Origin": origin},
                 proxy=None, open_timeout=5) as ws:
        for settings in ({"on_complete": ["touch", "/tmp/x"]},
                         {"webhook": "http://127.0.0.1:9/"}):
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "set_settings",
                                "params": {"settings": settings}}))
            reply = json.loads(ws.recv(timeout=5))
            assert reply["error"]["code"] == -32602, reply
            assert "browser" in reply["error"]["message"]
        # What the extension does set still goes through.
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "set_settings",
                            "params": {"settings": {"max_active": 2}}}))
        assert json.loads(ws.recv(timeout=5))["result"]["settings"]["max_active"] == 2
    with daemon.client() as c:
        settings = c.call("get_settings")["settings"]
        assert settings["on_complete"] == [] and settings["webhook"] == ""
        # The user's own client may.
        c.call("set_settings", settings={"webhook": "http://127.0.0.1:9/"})
        assert c.call("get_settings")["settings"]["webhook"] == "http://127.0.0.1:9/"
