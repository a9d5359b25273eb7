"""A web page, another local user or a buggy client against a real ``freight daemon``.

The daemon listens on 127.0.0.1 only and refuses before the WebSocket upgrade: a foreign
``Host`` (DNS rebinding) with 421, any web ``Origin`` (cross-site WebSocket) with 403, an
upgrade without a valid proof of the token (freight.handshake; a bearer token included) with
401 (server.ApiServer). A plain HTTP request (a CSRF form post) is never a WebSocket upgrade
and is refused. Every refusal test sends a valid proof, so that only the defence under test
can refuse it.
"""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from secdaemon import DaemonProcess, database_dump
from websockets.exceptions import ConnectionClosed, InvalidStatus


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("sec-daemon") / "home").start()
    yield proc
    proc.stop()


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send one raw HTTP request; return the status and the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and len(data) > 200:
                break
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def upgrade(port: int, host: str, extra: str = "") -> str:
    return (
        "GET / HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    )


def count_downloads(daemon: DaemonProcess) -> int:
    with daemon.connect() as ws:
        return int(daemon.call(ws, "list")["result"]["total"])


# -- a web page -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1:8000",
               "chrome-extension://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "moz-extension://x"]
)
def test_a_web_page_origin_is_refused_even_with_the_token(
    daemon: DaemonProcess, origin: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        daemon.connect(origin=origin).close()
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:1",
                                  "localhost.evil.example:{port}", "[::1]:{port}"])
def test_dns_rebinding_host_is_refused(daemon: DaemonProcess, host: str) -> None:
    status, answer = raw_request(
        daemon.port, upgrade(daemon.port, host.format(port=daemon.port),
                             f"Authorization: {daemon.authorization()}\r\n"))
    assert status == 421, answer[:200]
    assert b"101" not in answer.split(b"\r\n", 1)[0]


def test_two_host_headers_are_refused_not_a_500(daemon: DaemonProcess) -> None:
    status, _ = raw_request(daemon.port, upgrade(
        daemon.port, f"127.0.0.1:{daemon.port}",
        f"Host: evil.example\r\nAuthorization: {daemon.authorization()}\r\n"))
    assert status == 421


def test_a_csrf_form_post_changes_nothing(daemon: DaemonProcess) -> None:
    before = count_downloads(daemon)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "add",
                       "params": {"url": "http://127.0.0.1:9/x"}}).encode()
    status, answer = raw_request(daemon.port, (
        "POST / HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{daemon.port}\r\nOrigin: https://evil.example\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"), body)
    # websockets drops a non-GET request without an answer (status 0 here): never a 2xx.
    assert status == 0 or 400 <= status < 500, answer[:200]
    status, answer = raw_request(daemon.port, (
        "GET /?method=add HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{daemon.port}\r\n\r\n"))
    assert 400 <= status < 500, answer[:200]
    assert count_downloads(daemon) == before
    assert daemon.alive()


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic Zm9vOmJhcg==", "Bearer ",
                                  "bearer{token}x", "Bearer {token}", "{token}",
                                  "Freight {token}"])
def test_no_or_wrong_token_is_refused(daemon: DaemonProcess, auth: str | None) -> None:
    # The right token as a bearer credential is refused too: it is what a stale daemon.json
    # gave away to whoever held the port.
    headers = {} if auth is None else {"Authorization": auth.format(token=daemon.token())}
    with pytest.raises(InvalidStatus) as refused:
        daemon.connect(additional_headers=headers).close()
    assert refused.value.response.status_code == 401
    with daemon.connect() as ws:  # the same daemon, with a real proof
        assert daemon.call(ws, "version")["result"]["protocol"] == 1


def test_the_token_in_the_query_string_is_not_accepted(daemon: DaemonProcess) -> None:
    status, _ = raw_request(daemon.port, upgrade(daemon.port, f"127.0.0.1:{daemon.port}")
                            .replace("GET / ", f"GET /?token={daemon.token()} "))
    assert status == 401


def test_a_proof_is_good_for_one_upgrade_only(daemon: DaemonProcess) -> None:
    auth = {"Authorization": daemon.authorization()}
    with daemon.connect(additional_headers=auth) as ws:
        assert daemon.call(ws, "version")["result"]["protocol"] == 1
    with pytest.raises(InvalidStatus) as replayed:  # a replay of the same credentials
        daemon.connect(additional_headers=auth).close()
    assert replayed.value.response.status_code == 401
    assert b"challenge" in replayed.value.response.body


def challenge(port: int, headers: str, host: str | None = None) -> tuple[int, bytes]:
    return raw_request(port, (f"GET /challenge HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}"
                              f"\r\n{headers}\r\n"))


def test_the_challenge_refuses_what_the_upgrade_refuses(daemon: DaemonProcess) -> None:
    from freight.handshake import key_id, new_nonce

    good = f"Freight-Nonce: {new_nonce()}\r\nFreight-Key: {key_id(daemon.token())}\r\n"
    status, answer = challenge(daemon.port, good)
    assert status == 200, answer
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert set(body) == {"nonce", "proof", "key"} and daemon.token() not in answer.decode()
    assert challenge(daemon.port, good, host=f"evil.example:{daemon.port}")[0] == 421
    assert challenge(daemon.port, good + "Origin: https://evil.example\r\n")[0] == 403
    for bad in ("", f"Freight-Key: {key_id('x')}\r\n",  # no nonce
                f"Freight-Nonce: short\r\nFreight-Key: {key_id('x')}\r\n",
                f"Freight-Nonce: {new_nonce()}\r\n",  # no key id
                f"Freight-Nonce: {new_nonce()}\r\nFreight-Key: NOT-HEX\r\n",
                good + f"Freight-Nonce: {new_nonce()}\r\n"):  # two nonces
        status, answer = challenge(daemon.port, bad)
        assert status == 400, (bad, answer)
        assert answer.rstrip().endswith(b"header") or b"must be" in answer, answer


# -- another local user or process ------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def test_the_daemon_listens_on_loopback_only(daemon: DaemonProcess) -> None:
    addresses = listening_addresses(daemon.port)
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1 in /proc's little-endian hex


def test_secrets_on_disk_are_private(daemon: DaemonProcess) -> None:
    secrets = daemon.home / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for name in ("api-token", "sealing-key"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
    assert len(daemon.token()) >= 32


# -- a buggy client ---------------------------------------------------------------------------


def test_an_oversized_message_closes_that_connection_only(daemon: DaemonProcess) -> None:
    before = database_dump(daemon.home / "freight.db")
    with daemon.connect() as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "add",
                            "params": {"url": "http://127.0.0.1/" + "a" * (2 << 20)}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with daemon.connect() as ws:
        assert daemon.call(ws, "version")["result"]["protocol"] == 1
    assert database_dump(daemon.home / "freight.db") == before


def test_the_download_list_and_logs_are_private(daemon: DaemonProcess) -> None:
    for path in (daemon.home / "freight.db", daemon.home / "logs"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
