"""A throttled HTTP/1.1 range server for the benchmarks (bench/run.py) and their tests.

It runs as its own process so that its CPU time is never counted against the client being
measured::

    python bench/server.py --port 0 --size 256M --rate 8M --link 200M --latency 0.1

and prints one JSON line on stdout once it listens:
``{"port": 41234, "size": ..., "sha256": "...", "path": "/dev/shm/..."}``.

What it models (each optional):

- ``--rate``: a per-connection rate limit, the common real case where more connections help;
- ``--link``: a link capacity shared by all connections (one token bucket for everyone);
- ``--latency``: seconds before the response head of every request (first-byte latency);
- ``--max-active N``: a request arriving while N others are being answered gets
  ``429 Too Many Requests`` with ``Retry-After: 1`` (RFC 6585 section 4), the way real servers
  push back on too many connections.

Every path serves the same deterministic content, so ``/a.bin`` and ``/b.bin`` are two files
with one known sha256 (bench S4 fetches 500 names). The content is generated once into
``/dev/shm/freight-bench/`` and reused: each 4 KiB block starts with its own offset, so a
byte written at the wrong place always changes the digest. ``GET /_stats`` returns the
counters (body bytes sent, requests, statuses) as JSON; bench S5 uses them to count the bytes
fetched twice after a crash.

Ranges follow RFC 9110 section 14: one ``bytes=`` range (``a-b``, ``a-``, ``-n``) gets 206 with
Content-Range; an unsatisfiable one gets 416 with ``Content-Range: bytes */SIZE``; several
ranges, or an ``If-Range`` that does not match the strong ETag, get the whole body with 200.
Connections are kept alive (HTTP/1.1 default, RFC 9112 section 9.3).

Speed: an unthrottled body goes out with ``loop.sock_sendfile`` (the kernel copies straight
from the page cache of the tmpfs file); a throttled one in small slices of a memory map, each
slice paid for in both buckets first. Standard library only, so it runs under any Python 3.11.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import mmap
import os
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

CONTENT_DIR = Path("/dev/shm/freight-bench")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
#: Slice size of an unthrottled sendfile; small enough that the byte counter stays current.
_SENDFILE_SLICE = 8 * 1024 * 1024
_MAX_HEAD = 64 * 1024


def parse_amount(text: str) -> int:
    """'8M' → 8 MiB, '100K' → 102400, '1G', '4096'. Binary units, as everywhere in the bench."""
    raw = text.strip().upper().removesuffix("/S").removesuffix("IB").removesuffix("B")
    unit = raw[-1] if raw and raw[-1] in "KMG" else ""
    number = raw[: len(raw) - len(unit)]
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r} (try 100K, 8M, 1G)") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"an amount must be >= 0: {text!r}")
    return int(value * _UNITS[unit])


# --- content -------------------------------------------------------------------------------


def content_file(size: int, directory: Path = CONTENT_DIR) -> tuple[Path, str]:
    """Create (once) the deterministic content of ``size`` bytes; return its path and sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"content-{size}.bin"
    digest_path = directory / f"content-{size}.sha256"
    if path.exists() and digest_path.exists() and path.stat().st_size == size:
        return path, digest_path.read_text().strip()
    # One seeded MiB of noise, with every 4 KiB block stamped with its absolute offset:
    # cheap to make at 1 GiB, and no two blocks of the file are equal.
    base = bytearray(random.Random(7).randbytes(1024 * 1024))
    digest = hashlib.sha256()
    tmp = directory / f".content-{size}.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        offset = 0
        while offset < size:
            n = min(len(base), size - offset)
            for block in range(0, n, 4096):
                struct.pack_into(">Q", base, block, offset + block)
            piece = memoryview(base)[:n]
            out.write(piece)
            digest.update(piece)
            offset += n
    os.replace(tmp, path)
    digest_path.write_text(digest.hexdigest() + "\n")
    return path, digest.hexdigest()


# --- rate limiting -------------------------------------------------------------------------


class Bucket:
    """A token bucket that may go into debt: ``reserve(n)`` books n bytes and says how long
    to wait before sending them. Bookings are served in order, so connections sharing one
    bucket get a fair FIFO share of it."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def reserve(self, n: int) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class Config:
    size: int
    rate: int = 0  # bytes/s per connection, 0: none
    link: int = 0  # bytes/s shared, 0: none
    latency: float = 0.0
    max_active: int = 0  # 0: never 429


@dataclass
class Stats:
    bytes_sent: int = 0
    requests: int = 0
    connections: int = 0
    open_connections: int = 0
    active: int = 0
    max_active: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "bytes_sent": self.bytes_sent,
            "requests": self.requests,
            "connections": self.connections,
            "open_connections": self.open_connections,
            "active": self.active,
            "max_active": self.max_active,
            "statuses": dict(self.statuses),
        }


# --- HTTP ----------------------------------------------------------------------------------


class BadRequest(Exception):
    pass


def parse_head(raw: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers (names lower-cased) of one request head (RFC 9112 section 2)."""
    try:
        text = raw.decode("latin-1")
        line, *rest = text.split("\r\n")
        method, target, version = line.split(" ")
    except ValueError:
        raise BadRequest("bad request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest("not HTTP/1.x")
    headers: dict[str, str] = {}
    for item in rest:
        if not item:
            continue
        name, sep, value = item.partition(":")
        if not sep:
            raise BadRequest("bad header line")
        headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


def parse_range(value: str, size: int) -> tuple[int, int] | None | str:
    """One ``bytes=`` range → (first, last) inclusive; None: ignore it and send the whole body
    (several ranges, another unit, bad syntax: RFC 9110 section 14.2 lets us); "416": not
    satisfiable."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":  # suffix range: the last n bytes
            n = int(last_text)
            if n <= 0:
                return "416"
            return (max(0, size - n), size - 1) if size else "416"
        first = int(first_text)
        last = int(last_text) if last_text else None
    except ValueError:
        return None
    if first < 0 or (last is not None and last < first):
        return None  # not a valid byte-range-spec: ignored (RFC 9110 section 14.1.1)
    if first >= size:
        return "416"
    return first, size - 1 if last is None else min(last, size - 1)


class Server:
    def __init__(self, config: Config, path: Path, sha256: str) -> None:
        self.config = config
        self.path = path
        self.sha256 = sha256
        self.etag = f'"{sha256[:16]}-{config.size}"'
        self.last_modified = formatdate(1_700_000_000, usegmt=True)
        self.stats = Stats()
        self.fd = os.open(path, os.O_RDONLY)
        self.map = mmap.mmap(self.fd, config.size, prot=mmap.PROT_READ) if config.size else None
        throttled = config.rate or config.link
        # Slices of about 1/100 s of the per-connection rate keep the pacing smooth without a
        # system call per few bytes.
        rate = config.rate or config.link or 1
        self.slice = max(16 * 1024, min(256 * 1024, rate // 100)) if throttled else 0
        self.link = (
            Bucket(config.link, max(self.slice, config.link * 0.01)) if config.link else None
        )

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(sock)
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop.create_task(self.connection(conn))

    async def connection(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self.stats.connections += 1
        self.stats.open_connections += 1
        bucket = Bucket(self.config.rate, self.slice) if self.config.rate else None
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    if len(buffer) > _MAX_HEAD:
                        raise BadRequest("request head too large")
                    data = await loop.sock_recv(conn, 65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                try:
                    method, target, version, headers = parse_head(head)
                except BadRequest as exc:
                    await self.simple(conn, 400, str(exc).encode(), close=True)
                    return
                keep = self.keep_alive(version, headers)
                await self.request(conn, method, target, headers, bucket, keep)
                if not keep:
                    return
        except (ConnectionError, BadRequest, OSError):
            pass
        finally:
            self.stats.open_connections -= 1
            conn.close()

    @staticmethod
    def keep_alive(version: str, headers: dict[str, str]) -> bool:
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def count(self, status: int) -> None:
        key = str(status)
        self.stats.statuses[key] = self.stats.statuses.get(key, 0) + 1

    async def simple(
        self, conn: socket.socket, status: int, body: bytes, close: bool = False, extra: str = ""
    ) -> None:
        reason = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  429: "Too Many Requests", 200: "OK"}.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
        ).encode()
        await asyncio.get_running_loop().sock_sendall(conn, head + body)

    async def request(
        self,
        conn: socket.socket,
        method: str,
        target: str,
        headers: dict[str, str],
        bucket: Bucket | None,
        keep: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        if target.split("?")[0] == "/_stats":
            body = json.dumps(self.stats.as_dict()).encode()
            await self.simple(conn, 200, body, close=not keep,
                              extra="Content-Type: application/json\r\n")
            return
        self.stats.requests += 1
        if method not in ("GET", "HEAD"):
            self.count(405)
            await self.simple(conn, 405, b"", close=not keep, extra="Allow: GET, HEAD\r\n")
            return
        cfg = self.config
        if cfg.max_active and self.stats.active >= cfg.max_active:
            self.count(429)
            await self.simple(conn, 429, b"", close=not keep, extra="Retry-After: 1\r\n")
            return
        self.stats.active += 1
        self.stats.max_active = max(self.stats.max_active, self.stats.active)
        try:
            if cfg.latency:
                await asyncio.sleep(cfg.latency)
            first, last, status = 0, cfg.size - 1, 200
            wanted = parse_range(headers["range"], cfg.size) if "range" in headers else None
            if_range = headers.get("if-range")
            if if_range is not None and if_range != self.etag and if_range != self.last_modified:
                wanted = None  # RFC 9110 section 13.1.5: a changed validator gets the whole body
            if wanted == "416":
                self.count(416)
                head = (
                    f"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{cfg.size}\r\n"
                    f"Content-Length: 0\r\n\r\n"
                )
                await loop.sock_sendall(conn, head.encode())
                return
            if isinstance(wanted, tuple):
                first, last = wanted
                status = 206
            length = last - first + 1
            lines = [
                f"HTTP/1.1 {status} {'Partial Content' if status == 206 else 'OK'}",
                "Content-Type: application/octet-stream",
                f"Content-Length: {length}",
                "Accept-Ranges: bytes",
                f"ETag: {self.etag}",
                f"Last-Modified: {self.last_modified}",
            ]
            if status == 206:
                lines.append(f"Content-Range: bytes {first}-{last}/{cfg.size}")
            if not keep:
                lines.append("Connection: close")
            self.count(status)
            await loop.sock_sendall(conn, ("\r\n".join(lines) + "\r\n\r\n").encode())
            if method == "GET" and length > 0:
                await self.body(conn, first, length, bucket)
        finally:
            self.stats.active -= 1

    async def body(
        self, conn: socket.socket, offset: int, length: int, bucket: Bucket | None
    ) -> None:
        loop = asyncio.get_running_loop()
        end = offset + length
        if not self.slice:
            with open(self.fd, "rb", closefd=False) as file:
                while offset < end:
                    n = min(_SENDFILE_SLICE, end - offset)
                    sent = await loop.sock_sendfile(conn, file, offset, n, fallback=True)
                    self.stats.bytes_sent += sent
                    offset += sent
            return
        assert self.map is not None
        view = memoryview(self.map)
        try:
            while offset < end:
                n = min(self.slice, end - offset)
                wait = 0.0
                if bucket is not None:
                    wait = bucket.reserve(n)
                if self.link is not None:
                    wait = max(wait, self.link.reserve(n))
                if wait > 0:
                    await asyncio.sleep(wait)
                await loop.sock_sendall(conn, view[offset : offset + n])
                self.stats.bytes_sent += n
                offset += n
        finally:
            view.release()


async def main_async(args: argparse.Namespace) -> None:
    path, sha256 = content_file(args.size, Path(args.content_dir))
    config = Config(args.size, args.rate, args.link, args.latency, args.max_active)
    server = Server(config, path, sha256)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    print(json.dumps({"port": port, "size": args.size, "sha256": sha256, "path": str(path),
                      "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = loop.create_task(server.serve(sock))
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    sock.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--size", type=parse_amount, default=parse_amount("64M"))
    p.add_argument("--rate", type=parse_amount, default=0, help="bytes/s per connection")
    p.add_argument("--link", type=parse_amount, default=0, help="bytes/s for all connections")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    p.add_argument("--max-active", type=int, default=0, help="429 beyond this many requests")
    p.add_argument("--content-dir", default=str(CONTENT_DIR))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print("the bench server listens on loopback only", file=sys.stderr)
        return 2
    if args.latency < 0 or args.max_active < 0:
        print("--latency and --max-active must be >= 0", file=sys.stderr)
        return 2
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
