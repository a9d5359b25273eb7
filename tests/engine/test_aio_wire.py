"""The event loop's reader (engine/http/aio.py, aiowire.py) on the wire: against raw servers
that do what the fault server does not — bytes nobody asked for, heads of every size, bodies
and heads that stop coming. Each download runs as the scheduler runs it (quick_support.Loop).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from freight.config import EngineSettings
from freight.engine.http.aio import AioPool
from freight.engine.http.httpx_reader import USER_AGENT
from freight.engine.quick import HandOver
from freight.models import DownloadState
from freight.store import Store
from security.rawserver import RawServer, read_head, self_signed

from .quick_support import Loop, add
from .wire_support import FAST

SETTINGS = EngineSettings(**FAST)
QUICK_STALL = EngineSettings(**{**FAST, "stall_timeout": 0.3})


def answer(body: bytes, *extra_headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra_headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()




def run(loop: Loop, store: Store, tmp_path: Path, url: str):
    return loop.run(add(store, tmp_path, url))


def test_bytes_past_a_body_never_become_the_next_answer(store, tmp_path):
    # RFC 9112 §6.3: what follows a body of the declared length belongs to no answer; a
    # connection that carried such bytes is not used again.
    async def handler(reader, writer):
        while True:
            line, _ = await read_head(reader)
            if not line:
                return
            writer.write(answer(b"hello") + b"GARBAGE")
            await writer.drain()

    with RawServer(handler) as server:
        loop = Loop(store, SETTINGS)
        try:
            ends = [run(loop, store, tmp_path, server.url(f"/f{i}")) for i in range(2)]
        finally:
            loop.close()
    for ended in ends:
        assert ended.handed_over is None, ended.handed_over
        assert Path(ended.download.path).read_bytes() == b"hello"
    assert server.connections == 2


def test_an_answer_sent_while_the_connection_idled_is_not_taken_for_the_next(store, tmp_path):
    # A server may close an idle connection with a 408 (RFC 9110 §15.5.9) and keep it open
    # for a moment: that answer was to no request of ours.
    async def handler(reader, writer):
        line, _ = await read_head(reader)
        writer.write(answer(b"first"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    async def second(reader, writer):
        await read_head(reader)
        writer.write(answer(b"second"))
        await writer.drain()

    served = iter([handler, second])

    async def dispatch(reader, writer):
        await next(served)(reader, writer)

    with RawServer(dispatch) as server:
        loop = Loop(store, SETTINGS)
        try:
            first = run(loop, store, tmp_path, server.url("/a"))
            asyncio.run(asyncio.sleep(0.3))  # the 408 has come meanwhile
            then = run(loop, store, tmp_path, server.url("/b"))
        finally:
            loop.close()
    assert first.handed_over is None and then.handed_over is None, then.handed_over
    assert Path(then.download.path).read_bytes() == b"second"


@pytest.mark.parametrize("pad", [100, 6_000, 30_000])
def test_a_head_of_any_size_up_to_the_limit_with_its_body(store, tmp_path, pad):
    body = bytes(range(256)) * 200
    sent = answer(body, f"X-Pad: {'p' * pad}")

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n")
        for at in range(0, len(sent), 7_000):  # in pieces: a head may end in any read
            writer.write(sent[at : at + 7_000])
            await writer.drain()
            await asyncio.sleep(0.001)

    with RawServer(handler) as server:
        loop = Loop(store, SETTINGS)
        try:
            ended = run(loop, store, tmp_path, server.url("/big-head"))
        finally:
            loop.close()
    assert ended.handed_over is None, ended.handed_over
    assert Path(ended.download.path).read_bytes() == body


def test_a_head_over_the_limit_is_refused(store, tmp_path):
    async def handler(reader, writer):
        await read_head(reader)
        writer.write(answer(b"x", f"X-Pad: {'p' * 70_000}"))
        await writer.drain()
        await asyncio.sleep(5)

    with RawServer(handler) as server:
        loop = Loop(store, SETTINGS)
        try:
            download = add(store, tmp_path, server.url("/huge-head"))
            ended = loop.start(loop.quick(download)).result(10)
        finally:
            loop.close()
    assert not isinstance(ended, HandOver)
    assert ended.state is DownloadState.FAILED and "too large" in (ended.error or "")


def test_a_body_that_stops_coming_is_stalled(store, tmp_path):
    async def handler(reader, writer):
        await read_head(reader)
        writer.write(answer(b"y" * 20_000)[:-10_000])
        await writer.drain()
        await asyncio.sleep(10)

    with RawServer(handler) as server:
        loop = Loop(store, QUICK_STALL)
        try:
            run_ = loop.quick(add(store, tmp_path, server.url("/stops")))
            ended = loop.start(run_).result(10)
        finally:
            loop.close()
    assert ended == HandOver("no data for too long")  # the threads' engine retries it
    assert run_.progress().done == 20_000 - 10_000


def test_a_head_that_trickles_too_long_is_stalled(store, tmp_path):
    # Each byte within the stall timeout, the whole head not within twice it (as lean's).
    async def handler(reader, writer):
        await read_head(reader)
        for byte in answer(b"z"):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)

    with RawServer(handler) as server:
        loop = Loop(store, QUICK_STALL)
        try:
            ended = loop.start(loop.quick(add(store, tmp_path, server.url("/slow")))).result(10)
        finally:
            loop.close()
    assert ended == HandOver("no complete response head in time")


def test_a_full_lane_to_one_host_keeps_its_connections_for_the_next_round(
    fault_server, store, tmp_path
):
    # The small lane runs as many files of a host at once as its cap (32 by default): the
    # pool keeps that many for the next round, instead of closing half and opening them anew.
    fault_server.add("/lane.bin", data=b"l" * 2000, latency=0.2)
    loop = Loop(store, SETTINGS)
    try:
        for round_ in range(2):
            runs = [
                loop.start(loop.quick(add(store, tmp_path, fault_server.url(
                    f"/lane.bin?r={round_}&n={i}"))))
                for i in range(loop.hosts.default)
            ]
            assert all(not isinstance(r.result(30), HandOver) for r in runs)
    finally:
        loop.close()
    assert fault_server.stats("/lane.bin").connections == loop.hosts.default


def test_small_files_over_tls_on_one_kept_connection(store, tmp_path):
    # The buffered protocol under asyncio's TLS transport: a body in many records, a head
    # and a body in one, and the connection kept for the next file.
    server_tls = self_signed(tmp_path)
    bodies = [bytes(range(256)) * 1200, b"tiny"]

    async def handler(reader, writer):
        for body in bodies:
            line, _ = await read_head(reader)
            if not line:
                return
            writer.write(answer(body))
            await writer.drain()

    with RawServer(handler, tls=server_tls) as server:
        loop = Loop(store, SETTINGS)
        trusted = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        loop.pool = AioPool(connect_timeout=3.0, stall_timeout=3.0, user_agent=USER_AGENT,
                            ssl_context=lambda: trusted)
        try:
            ends = [run(loop, store, tmp_path, server.url(f"/t{i}")) for i in range(2)]
        finally:
            loop.close()
    for ended, body in zip(ends, bodies, strict=True):
        assert ended.handed_over is None, ended.handed_over
        assert Path(ended.download.path).read_bytes() == body
    assert server.connections == 1
