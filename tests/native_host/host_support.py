"""Helpers for the native host tests: a real host process on pipes and a stand-in daemon.

A plain module with a name no other test folder uses (``conftest`` is imported under one
name by every folder, so tests cannot import from it reliably).

``StandInDaemon`` is a real websockets JSON-RPC server on 127.0.0.1 (port 0) that runs the
handshake the way the daemon does (docs/PROTOCOL.md, freight.handshake) and answers a few
methods; it writes ``daemon.json`` and the file-fallback token into FREIGHT_HOME and holds the
instance lock, so that the host finds it exactly as it finds the real daemon. Tests that need
the real daemon use ``freight daemon`` instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from freight import handshake
from freight_host.framing import BROWSER_TO_HOST_MAX, FrameDecoder, FramingError, encode
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

TOKEN = "test-token-0123456789"


def write_token(home: Path, token: str = TOKEN) -> None:
    secrets = home / "secrets"
    secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    (secrets / "api-token").write_text(token)
    (secrets / "api-token").chmod(0o600)


class StandInDaemon:
    def __init__(self, home: Path, token: str = TOKEN, port: int = 0) -> None:
        self.home = home
        self.token = token
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self.connections: list[ServerConnection] = []
        self.auth_headers: list[str | None] = []
        self.challenges: list[dict[str, str]] = []
        self._nonces = handshake.NonceStore()
        self._lock_fd: int | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def _process_request(self, conn: ServerConnection, request: Any) -> Any:
        if request.path == handshake.CHALLENGE_PATH:
            nonce = request.headers.get(handshake.NONCE_HEADER, "")
            answer = handshake.challenge_answer(self.token, nonce, self._nonces, self.port)
            self.challenges.append(answer)
            return conn.respond(200, json.dumps(answer))
        auth = request.headers.get("Authorization")
        self.auth_headers.append(auth)
        try:
            given = handshake.parse_authorization(auth or "")
        except handshake.HandshakeError:
            return conn.respond(401, "no proof\n")
        if not (self._nonces.redeem(given.challenge, given.nonce)
                and handshake.verify_client_proof(self.token, given.nonce, given.challenge,
                                                  self.port, given.proof)):
            return conn.respond(401, "wrong proof\n")
        return None

    def _handler(self, conn: ServerConnection) -> None:
        self.connections.append(conn)
        try:
            for text in conn:
                msg = json.loads(text)
                self.requests.append(msg)
                self._answer(conn, msg)
        except ConnectionClosed:
            pass

    def _answer(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        method, id_ = msg.get("method"), msg.get("id")
        params = msg.get("params") or {}

        def reply(result: Any) -> None:
            conn.send(json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}))

        if method == "version":
            reply({"version": "0.1.0", "protocol": 1, "pid": os.getpid()})
        elif method == "echo":
            reply(params)
        elif method == "subscribe":
            reply({"subscribed": ["download.added"]})
            conn.send(json.dumps({"jsonrpc": "2.0", "method": "download.added",
                                  "params": {"download": {"id": 1, "url": "http://x/"}}}))
        elif method == "big":
            reply({"blob": "x" * params["size"]})
        elif method == "big_event":
            conn.send(json.dumps({"jsonrpc": "2.0", "method": "download.progress",
                                  "params": {"blob": "x" * 2_000_000}}))
            reply({"ok": True})
        elif method == "slow":
            time.sleep(params.get("seconds", 0.5))
            reply({"ok": True})
        elif method == "drop":
            conn.close()
        elif id_ is not None:
            conn.send(json.dumps({"jsonrpc": "2.0", "id": id_, "error": {
                "code": -32601, "message": f"no such method: {method}",
                "data": {"kind": "method_not_found"}}}))

    def start(self) -> StandInDaemon:
        self._server = serve(self._handler, "127.0.0.1", self.port,
                             process_request=self._process_request, max_size=1024 * 1024)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        write_token(self.home, self.token)
        state = self.home / "state"
        state.mkdir(parents=True, exist_ok=True)
        # Hold the instance lock as a daemon does: without it daemon.json counts as stale.
        self._lock_fd = os.open(state / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        (state / "daemon.json").write_text(json.dumps({
            "pid": os.getpid(), "port": self.port, "url": f"ws://127.0.0.1:{self.port}/",
            "protocol": 1, "started_at": time.time()}))
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class HostProcess:
    """A real freight-host process; records every byte it writes to stdout."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.stdout_bytes = bytearray()
        self.messages: queue.Queue[Any] = queue.Queue()
        self._decoder = FrameDecoder(max_size=2 * 1024 * 1024)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                break
            self.stdout_bytes += chunk
            for item in self._decoder.feed(chunk):
                self.messages.put(item)

    def send(self, message: Any) -> None:
        # The browser may send up to 64 MiB; only host → browser is held to 1 MB.
        self.send_raw(encode(message, limit=BROWSER_TO_HOST_MAX))

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, timeout: float = 10.0) -> Any:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no frame within {timeout} s; stderr: {self.stderr()}") \
                from None

    def recv_id(self, id_: Any, timeout: float = 10.0) -> dict[str, Any]:
        """The response with this id; notifications met on the way are kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if isinstance(msg, dict) and msg.get("id") == id_ and "method" not in msg:
                return msg
            self.seen.append(msg)

    seen: list[Any]

    def call(self, method: str, params: dict[str, Any] | None = None, id_: Any = None,
             timeout: float = 10.0) -> dict[str, Any]:
        HostProcess._ids += 1
        id_ = HostProcess._ids if id_ is None else id_
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.recv_id(id_, timeout)

    _ids = 0

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = 10.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")

    def assert_stdout_only_frames(self) -> list[Any]:
        """Every byte written to stdout is part of a valid frame of valid JSON."""
        d = FrameDecoder(max_size=2 * 1024 * 1024)
        items = d.feed(bytes(self.stdout_bytes))
        assert d.eof() is None, "stdout ends in the middle of a frame"
        assert not any(isinstance(i, FramingError) for i in items), items
        return items

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
