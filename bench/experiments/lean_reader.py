"""How cheap can a Python range download be? The floor that Freight's engine is measured against.

N threads, each one kept-alive HTTP/1.1 connection to bench/server.py reading its byte range
with ``recv_into`` into one reused buffer and ``os.pwrite``-ing it into one shared,
preallocated file in /dev/shm: no HTTP library, no planner, no locks, no database. The CPU
seconds per GiB it costs (from ``resource.getrusage`` of this process) is what the GIL, the
threads and the two kernel copies cost; everything Freight spends above it is overhead.

    python bench/experiments/lean_reader.py --size 1G --connections 1,2,4,8,16 --read 256K

It starts its own server process (not counted) and checks the sha256 of every result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE.parent / "server.py"
sys.path.insert(0, str(HERE.parent))
from server import parse_amount  # noqa: E402


def fetch_range(port: int, fd: int, first: int, last: int, read_size: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"GET /x HTTP/1.1\r\nHost: x\r\nRange: bytes={first}-{last}\r\n\r\n".encode())
    buf = bytearray(read_size)
    view = memoryview(buf)
    filled = 0
    while True:  # the head (and maybe the first body bytes)
        filled += sock.recv_into(view[filled:])
        end = buf.find(b"\r\n\r\n", 0, filled)
        if end >= 0:
            break
    assert buf.startswith(b"HTTP/1.1 206"), bytes(buf[:40])
    offset = first
    early = filled - end - 4
    if early:
        os.pwrite(fd, view[end + 4 : filled], offset)
        offset += early
    remaining = last + 1 - offset
    while remaining:
        want = min(read_size, remaining)
        got = 0
        while got < want:  # fill the buffer: fewer, larger writes
            n = sock.recv_into(view[got:want])
            if not n:
                raise ConnectionError("closed early")
            got += n
        os.pwrite(fd, view[:got], offset)
        offset += got
        remaining -= got
    sock.close()


def one(port: int, size: int, sha: str, conns: int, read_size: int, out: Path) -> dict[str, float]:
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    step = size // conns
    ranges = [(i * step, (i + 1) * step - 1 if i < conns - 1 else size - 1) for i in range(conns)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    os.posix_fallocate(fd, 0, size)  # counted: Freight and aria2c preallocate too
    threads = [threading.Thread(target=fetch_range, args=(port, fd, a, b, read_size))
               for a, b in ranges]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.close(fd)
    with open(out, "rb") as f:
        ok = hashlib.file_digest(f, "sha256").hexdigest() == sha
    out.unlink()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"connections": conns, "read": read_size, "mibps": size / 2**20 / wall,
            "cpu_s_per_gib": cpu / (size / 2**30), "user": after.ru_utime - before.ru_utime,
            "sys": after.ru_stime - before.ru_stime, "ok": ok}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=parse_amount, default=parse_amount("1G"))
    p.add_argument("--connections", default="1,2,4,8,16")
    p.add_argument("--read", default="256K", help="comma-separated read sizes")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--server-args", default="", help="e.g. '--rate 8M --link 200M'")
    args = p.parse_args()
    srv = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--size",
                            str(args.size), *args.server_args.split()],
                           stdout=subprocess.PIPE, text=True)
    info = json.loads(srv.stdout.readline())  # type: ignore[union-attr]
    out = Path("/dev/shm") / f"lean-{os.getpid()}.bin"
    try:
        for read in (parse_amount(r) for r in args.read.split(",")):
            for conns in (int(c) for c in args.connections.split(",")):
                rows = [one(info["port"], args.size, info["sha256"], conns, read, out)
                        for _ in range(args.runs)]
                rows.sort(key=lambda r: r["cpu_s_per_gib"])
                med = rows[len(rows) // 2]
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in med.items()}), flush=True)
    finally:
        srv.terminate()
        srv.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
