"""An impostor daemon: what another local user could run on the port of a dead daemon.

    python -I impostor.py PORT LOGFILE

Standard library only (it runs as another uid, away from the test's packages). It listens on
127.0.0.1:PORT (0: any), prints the bound port on stdout, and appends every byte it receives
to LOGFILE. It answers ``GET /challenge`` with a made-up proof (and the client's own key id, so
that only the proof can give it away) and accepts any WebSocket upgrade, a bearer one
included, answering every JSON-RPC request with a fake download id: what a thief would need to
keep a browser's download and its cookies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading

FAKE_ID = 424242
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

log_lock = threading.Lock()


def record(log_path: str, data: bytes) -> None:
    with log_lock, open(log_path, "ab") as log:
        log.write(data)


def recv_exact(conn: socket.socket, n: int, log_path: str) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        record(log_path, chunk)
        data += chunk
    return data


def read_head(conn: socket.socket, log_path: str) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        record(log_path, chunk)
        data += chunk
    return data


def headers_of(head: bytes) -> dict[str, str]:
    found = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip()
    return found


def made_up() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def send_text(conn: socket.socket, text: str) -> None:
    payload = text.encode()
    if len(payload) < 126:
        head = struct.pack("!BB", 0x81, len(payload))
    else:
        head = struct.pack("!BBH", 0x81, 126, len(payload))
    conn.sendall(head + payload)


def websocket(conn: socket.socket, log_path: str) -> None:
    while True:
        first, second = recv_exact(conn, 2, log_path)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", recv_exact(conn, 2, log_path))[0]
        elif length == 127:
            length = struct.unpack("!Q", recv_exact(conn, 8, log_path))[0]
        mask = recv_exact(conn, 4, log_path) if second & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(recv_exact(conn, length,
                                                                          log_path)))
        record(log_path, b"\n[unmasked] " + payload + b"\n")
        if first & 0x0F == 0x8:
            return
        try:
            request = json.loads(payload)
        except ValueError:
            continue
        if isinstance(request, dict) and "id" in request:
            result = ({"version": "0.1.0", "protocol": 1, "pid": 1}
                      if request.get("method") == "version" else {"id": FAKE_ID})
            send_text(conn, json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                        "result": result}))


def serve_one(conn: socket.socket, log_path: str) -> None:
    with conn:
        try:
            head = read_head(conn, log_path)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            headers = headers_of(head)
            path = line.split(" ")[1] if " " in line else "/"
            if path.startswith("/challenge"):
                body = json.dumps({"nonce": made_up(), "proof": made_up(),
                                   "key": headers.get("freight-key", "0" * 16)}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                             + body)
                return
            if headers.get("upgrade", "").lower() == "websocket":
                accept = base64.b64encode(hashlib.sha1(
                    headers.get("sec-websocket-key", "").encode() + WS_GUID).digest())
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                             + b"\r\n\r\n")
                websocket(conn, log_path)
                return
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except (ConnectionError, OSError):
            return


def main() -> None:
    port, log_path = int(sys.argv[1]), sys.argv[2]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve_one, args=(conn, log_path), daemon=True).start()


if __name__ == "__main__":
    main()
