"""The benchmark server (bench/server.py) serves exact bytes, ranges by RFC 9110, and paces them.

It runs as a real process on 127.0.0.1 port 0, as bench/run.py starts it. Timing is only
checked from below (a throttled body cannot arrive faster than its rate allows), never from
above, so that a slow machine cannot fail these tests.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "bench" / "server.py"
SIZE = 1024 * 1024 + 123  # not a multiple of the 4 KiB stamp or of a MiB


def load_module():  # the bench is not a package; load its file as a module
    spec = importlib.util.spec_from_file_location("bench_server", SERVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_server"] = module
    spec.loader.exec_module(module)
    return module


bench_server = load_module()


class Running:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, object]) -> None:
        self.proc = proc
        self.port = int(info["port"])  # type: ignore[call-overload]
        self.sha256 = str(info["sha256"])
        self.size = int(info["size"])  # type: ignore[call-overload]

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)

    def get(self, path: str = "/f.bin", headers: dict[str, str] | None = None):
        c = self.conn()
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    def stats(self) -> dict[str, object]:
        return json.loads(self.get("/_stats")[1])


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    procs: list[subprocess.Popen[str]] = []

    def _start(*args: str, size: int = SIZE) -> Running:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", "0", "--size", str(size),
             "--content-dir", str(tmp_path / "content"), *args],
            stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the server printed nothing"
        return Running(proc, json.loads(line))

    yield _start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_whole_body_matches_the_announced_sha256_and_is_stamped(start) -> None:
    srv = start()
    r, body = srv.get()
    assert r.status == 200
    assert int(r.getheader("Content-Length")) == SIZE == len(body)
    assert r.getheader("Accept-Ranges") == "bytes"
    assert hashlib.sha256(body).hexdigest() == srv.sha256
    # every 4 KiB block begins with its own offset, so misplaced bytes change the digest
    for offset in (0, 4096, 1024 * 1024):
        assert int.from_bytes(body[offset : offset + 8], "big") == offset


def test_content_is_deterministic_and_reused(start, tmp_path: Path) -> None:
    first = start()
    second = start()
    assert first.sha256 == second.sha256
    path, digest = bench_server.content_file(SIZE, tmp_path / "content")
    assert digest == first.sha256
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=1000-", 1000, SIZE - 1), ("bytes=-500", SIZE - 500, SIZE - 1),
     ("bytes=5-999999999", 5, SIZE - 1)],
)
def test_single_ranges_get_206_with_the_exact_bytes(start, header: str, first: int,
                                                    last: int) -> None:
    srv = start()
    _, whole = srv.get()
    r, body = srv.get(headers={"Range": header})
    assert r.status == 206
    assert r.getheader("Content-Range") == f"bytes {first}-{last}/{SIZE}"
    assert body == whole[first : last + 1]


def test_unsatisfiable_range_gets_416_with_the_size(start) -> None:
    srv = start()
    r, body = srv.get(headers={"Range": f"bytes={SIZE}-"})
    assert r.status == 416
    assert r.getheader("Content-Range") == f"bytes */{SIZE}"
    assert body == b""


def test_several_ranges_or_a_stale_if_range_get_the_whole_body(start) -> None:
    srv = start()
    r, body = srv.get(headers={"Range": "bytes=0-1,5-6"})
    assert (r.status, len(body)) == (200, SIZE)
    r, _ = srv.get(headers={"Range": "bytes=0-9"})
    etag = r.getheader("ETag")
    assert etag and etag.startswith('"')
    r, body = srv.get(headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (r.status, len(body)) == (206, 10)
    r, body = srv.get(headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert (r.status, len(body)) == (200, SIZE)


def test_keep_alive_serves_several_requests_on_one_connection(start) -> None:
    srv = start()
    c = srv.conn()
    for first in (0, 100, 200):
        c.request("GET", "/x", headers={"Range": f"bytes={first}-{first + 9}"})
        r = c.getresponse()
        assert r.status == 206
        assert len(r.read()) == 10
    c.close()
    stats = srv.stats()
    assert stats["connections"] == 2  # the three ranges, then /_stats
    assert stats["requests"] == 3


def test_bad_request_line_gets_400(start) -> None:
    srv = start()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")


def test_bytes_sent_counts_every_body_byte(start) -> None:
    srv = start()
    srv.get()
    srv.get(headers={"Range": "bytes=10-19"})
    stats = srv.stats()
    assert stats["bytes_sent"] == SIZE + 10
    assert stats["statuses"] == {"200": 1, "206": 1}


def test_per_connection_rate_limits_each_connection(start) -> None:
    srv = start("--rate", "1M")
    started = time.monotonic()
    r, body = srv.get(headers={"Range": "bytes=0-524287"})
    elapsed = time.monotonic() - started
    assert (r.status, len(body)) == (206, 524288)
    # 512 KiB at 1 MiB/s is 0.5 s; the bucket lends at most one 16 KiB slice up front
    assert elapsed >= 0.45


def test_link_capacity_is_shared_by_all_connections(start) -> None:
    srv = start("--rate", "4M", "--link", "1M")
    results: list[int] = []

    def fetch(first: int) -> None:
        r, body = srv.get(headers={"Range": f"bytes={first}-{first + 262143}"})
        results.append(len(body) if r.status == 206 else -1)

    started = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(i * 262144,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert results == [262144, 262144]
    # 512 KiB over a 1 MiB/s link: 0.5 s, although each connection alone may do 4 MiB/s
    assert elapsed >= 0.45


def test_latency_delays_the_response_head(start) -> None:
    srv = start("--latency", "0.3")
    started = time.monotonic()
    r, _ = srv.get(headers={"Range": "bytes=0-0"})
    assert r.status == 206
    assert time.monotonic() - started >= 0.29


def test_requests_beyond_max_active_get_429_with_retry_after(start) -> None:
    srv = start("--max-active", "1", "--latency", "0.5")
    first: list[int] = []
    t = threading.Thread(target=lambda: first.append(srv.get()[0].status))
    t.start()
    time.sleep(0.2)  # the first request is now waiting out its latency
    r, _ = srv.get()
    t.join()
    assert first == [200]
    assert r.status == 429
    assert r.getheader("Retry-After") == "1"
    assert srv.stats()["statuses"] == {"200": 1, "429": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("bytes=0-0", (0, 0)), ("bytes=-0", "416"), ("items=0-1", None), ("bytes=9-3", None),
     ("bytes=abc", None), ("bytes=10-", (10, 99))],
)
def test_parse_range(value: str, expected: object) -> None:
    assert bench_server.parse_range(value, 100) == expected


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    for args in (["--rate", "fast"], ["--latency", "-1"], ["--host", "0.0.0.0"]):
        r = subprocess.run([sys.executable, str(SERVER), *args], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, args
        assert r.stderr
