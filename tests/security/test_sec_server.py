"""A malicious or broken server, through the real engine: each attack ends in a clear error
(or a correct file) in bounded time, and nothing is ever written outside the chosen folder.

Behaviours the fault server lacks are spoken byte for byte by small asyncio servers
(tests/security/rawserver.py).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time

import pytest
from faultserver import FaultServer, make_data
from freight.models import DownloadState
from rawserver import RawServer, read_head

DATA = make_data(300_000, seed=88)


def ok_head(length: int | None, extra: str = "", status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/octet-stream"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def part_bytes(sandbox) -> int:
    return sum(os.path.getsize(sandbox.folder / name) for name in sandbox.files())


# -- header floods ----------------------------------------------------------------------------


async def flood_many_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n")
    for i in range(20_000):
        writer.write(f"X-Flood-{i}: {'a' * 20}\r\n".encode())
        await writer.drain()
    writer.write(b"\r\n0123456789")
    await writer.drain()


async def flood_one_huge_header(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Huge: ")
    writer.write(b"a" * (1 << 20))
    writer.write(b"\r\n\r\n0123456789")
    await writer.drain()


@pytest.mark.parametrize("handler", [flood_many_headers, flood_one_huge_header])
def test_header_flood_fails_cleanly(sandbox, handler) -> None:
    with RawServer(handler) as srv:
        started = time.monotonic()
        result = sandbox.run(srv.url("/f.bin"), max_tries=2)
    assert result.state == DownloadState.FAILED
    # The lean reader refuses a head over 64 KiB outright; httpx (the fallback) fails on it.
    assert result.error and ("head too large" in result.error or "fail" in result.error.lower())
    assert result.error_kind in ("protocol_violation", "transient")
    assert time.monotonic() - started < 30
    assert sandbox.files() == []  # the name is claimed only after a valid head
    sandbox.assert_outside_unchanged()


# -- redirects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/x", "data:,hi"]
)
def test_redirect_to_a_non_http_scheme_is_refused(
    sandbox, fault_server: FaultServer, target: str
) -> None:
    url = fault_server.add("/r", redirect_to=target)
    result = sandbox.run(url)
    assert result.state == DownloadState.FAILED
    assert result.error_kind == "protocol_violation"
    assert "unsupported" in (result.error or "")
    assert sandbox.files() == []
    sandbox.assert_outside_unchanged()


def test_redirect_loop_ends_with_a_clear_error(sandbox, fault_server: FaultServer) -> None:
    fault_server.add("/a", redirect_to="/b")
    url = fault_server.add("/b", redirect_to="/a")
    result = sandbox.run(url)
    assert result.state == DownloadState.FAILED
    assert result.error_kind == "protocol_violation"
    assert "too many redirects" in (result.error or "")
    # The default limit (10) bounds the requests: a few hops, not thousands.
    assert fault_server.requests_total <= 12
    assert sandbox.files() == []


def test_max_redirects_setting_is_honoured(sandbox, fault_server: FaultServer) -> None:
    fault_server.add("/f.bin", DATA, etag="v1")
    fault_server.add("/r2", redirect_to="/f.bin")
    fault_server.add("/r1", redirect_to="/r2")
    url = fault_server.add("/r0", redirect_to="/r1")  # three hops
    refused = sandbox.run(url, max_redirects=2)
    assert refused.state == DownloadState.FAILED
    assert refused.error_kind == "protocol_violation"
    allowed = sandbox.run(url, max_redirects=3)
    assert allowed.state == DownloadState.COMPLETED, allowed.error
    assert (sandbox.folder / "f.bin").read_bytes() == DATA


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "javascript:alert(1)", "/relative"]
)
def test_the_engine_refuses_a_non_http_url(sandbox, url: str) -> None:
    result = sandbox.run(url)
    assert result.state == DownloadState.FAILED
    assert result.error_kind == "protocol_violation"
    assert sandbox.files() == []
    sandbox.assert_outside_unchanged()


# -- sizes --------------------------------------------------------------------------------------


def huge_head(size: int, ranged: bool) -> RawServer:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        if ranged:
            writer.write(
                f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-{size - 1}/{size}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
        else:
            writer.write(ok_head(size))
        writer.write(b"x" * 1000)
        await writer.drain()
        await asyncio.sleep(5)

    return RawServer(handler)


@pytest.mark.parametrize("ranged", [True, False])
@pytest.mark.parametrize("size", [2**63, 10**30])
def test_an_impossible_declared_size_is_refused(sandbox, size: int, ranged: bool) -> None:
    with huge_head(size, ranged) as srv:
        result = sandbox.run(srv.url("/f.bin"))
    assert result.state == DownloadState.FAILED
    assert result.error_kind in ("protocol_violation", "transient")
    assert "size" in (result.error or "") or "Content-Length" in (result.error or "")
    assert result.error_kind != "internal"
    assert part_bytes(sandbox) == 0
    sandbox.assert_outside_unchanged()


@pytest.mark.parametrize("ranged", [True, False])
def test_an_absurd_size_pauses_for_lack_of_space_without_allocating(
    sandbox, ranged: bool
) -> None:
    with huge_head(10**18, ranged) as srv:
        result = sandbox.run(srv.url("/f.bin"))
    assert result.state == DownloadState.PAUSED
    assert result.error_kind == "disk_full"
    assert "not enough free space" in (result.error or "")
    assert part_bytes(sandbox) == 0  # checked before preallocating a byte
    sandbox.assert_outside_unchanged()


@pytest.mark.parametrize("ranged", [True, False])
def test_max_size_refuses_a_larger_file_before_writing(
    sandbox, fault_server: FaultServer, ranged: bool
) -> None:
    url = fault_server.add("/f.bin", DATA, etag="v1", ignore_range=not ranged)
    result = sandbox.run(url, max_size=len(DATA) - 1)
    assert result.state == DownloadState.FAILED
    assert result.error_kind == "protocol_violation"
    assert f"{len(DATA) - 1}-byte limit" in (result.error or "")
    assert part_bytes(sandbox) == 0
    exact = sandbox.run(url, max_size=len(DATA))
    assert exact.state == DownloadState.COMPLETED, exact.error


# -- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ranged", [True, False])
def test_more_bytes_than_declared_are_never_written(
    sandbox, fault_server: FaultServer, ranged: bool
) -> None:
    url = fault_server.add("/f.bin", DATA, etag="v1", extra_bytes=50_000, ignore_range=not ranged)
    result = sandbox.run(url)
    assert result.state == DownloadState.COMPLETED, result.error
    assert (sandbox.folder / "f.bin").read_bytes() == DATA


async def endless_after_declared(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    writer.write(ok_head(len(DATA)) + DATA)
    while True:  # the body goes on past its Content-Length, forever
        writer.write(b"!" * 65536)
        await writer.drain()


def test_a_body_that_never_ends_past_its_declared_size(sandbox) -> None:
    with RawServer(endless_after_declared) as srv:
        started = time.monotonic()
        result = sandbox.run(srv.url("/f.bin"), timeout=20)
    assert result.state == DownloadState.COMPLETED, result.error
    assert (sandbox.folder / "f.bin").read_bytes() == DATA
    assert time.monotonic() - started < 10


async def endless_without_length(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    writer.write(ok_head(None, "Connection: close"))
    while True:
        writer.write(b"!" * 65536)
        await writer.drain()


def test_a_body_without_length_that_never_ends_stops_at_max_size(sandbox) -> None:
    with RawServer(endless_without_length) as srv:
        result = sandbox.run(srv.url("/f.bin"), timeout=20, max_size=4 << 20)
    assert result.state == DownloadState.FAILED
    assert result.error_kind == "protocol_violation"
    assert part_bytes(sandbox) <= 4 << 20


def test_a_gzip_body_is_decoded_whole(sandbox, fault_server: FaultServer) -> None:
    """A server that compresses although we asked for identity: ranges of encoded bytes are
    never spliced; the whole body is decoded as one stream."""
    url = fault_server.add("/f.bin", DATA, etag="v1", gzip="always")
    result = sandbox.run(url)
    assert result.state == DownloadState.COMPLETED, result.error
    assert (sandbox.folder / "f.bin").read_bytes() == DATA
    assert all(h.get("accept-encoding") == "identity" for h in fault_server.stats("/f.bin").headers)


BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # ~64 KiB that inflate to 64 MiB


async def gzip_bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(ok_head(len(BOMB), "Content-Encoding: gzip") + BOMB)
    await writer.drain()


def test_a_gzip_bomb_is_stopped_by_max_size(sandbox) -> None:
    with RawServer(gzip_bomb) as srv:
        result = sandbox.run(srv.url("/f.bin"), max_size=1 << 20)
    assert result.state == DownloadState.FAILED
    assert result.error_kind == "protocol_violation"
    assert part_bytes(sandbox) <= 1 << 20


# -- slow servers -------------------------------------------------------------------------------


async def one_byte_every_three_seconds(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    writer.write(ok_head(1000))
    await writer.drain()
    for _ in range(1000):
        writer.write(b"s")
        await writer.drain()
        await asyncio.sleep(3)


def test_a_body_slower_than_the_stall_timeout_fails_as_stalled(sandbox) -> None:
    with RawServer(one_byte_every_three_seconds) as srv:
        started = time.monotonic()
        result = sandbox.run(srv.url("/f.bin"), stall_timeout=0.5, max_tries=2)
    assert result.state == DownloadState.FAILED
    assert "no data for too long" in (result.error or "")
    assert time.monotonic() - started < 10


async def one_byte_per_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(ok_head(100_000))
    await writer.drain()
    for _ in range(100_000):
        writer.write(b"s")
        await writer.drain()
        await asyncio.sleep(0.2)


def test_a_slow_loris_body_can_be_paused_at_once(sandbox) -> None:
    """Bytes keep coming, so no stall fires; the user's pause must still end it promptly,
    with the bytes received so far on disk."""
    import threading

    from freight.config import EngineSettings
    from freight.engine.transfer import Transfer

    with RawServer(one_byte_per_second) as srv:
        download = sandbox.store.add(srv.url("/f.bin"), str(sandbox.folder),
                                     state=DownloadState.ACTIVE)
        transfer = Transfer(sandbox.store, download.id, EngineSettings(stall_timeout=2.0))
        outcome: list = []
        thread = threading.Thread(target=lambda: outcome.append(transfer.run()), daemon=True)
        thread.start()
        time.sleep(1.5)
        asked = time.monotonic()
        transfer.stop("pause")
        thread.join(5)
        assert not thread.is_alive()
        assert time.monotonic() - asked < 1.5
    assert outcome[0].state == DownloadState.PAUSED
    assert sandbox.files() == ["f.bin.part"]


async def dribbled_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A response head sent one byte every 0.2 s, never finished: each read returns within
    the stall timeout, so only a deadline on the whole head can end it."""
    await read_head(reader)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


def test_a_dribbled_response_head_ends_with_a_clear_error(sandbox) -> None:
    with RawServer(dribbled_head) as srv:
        result = sandbox.run(srv.url("/f.bin"), timeout=8, stall_timeout=1.0, max_tries=2)
    assert result.state == DownloadState.FAILED
    assert sandbox.files() == []


def test_a_dribbled_response_head_can_be_paused_at_once(sandbox) -> None:
    import threading

    from freight.config import EngineSettings
    from freight.engine.transfer import Transfer

    with RawServer(dribbled_head) as srv:
        download = sandbox.store.add(srv.url("/f.bin"), str(sandbox.folder),
                                     state=DownloadState.ACTIVE)
        transfer = Transfer(sandbox.store, download.id, EngineSettings(stall_timeout=2.0))
        thread = threading.Thread(target=transfer.run, daemon=True)
        thread.start()
        time.sleep(1.0)
        transfer.stop("pause")
        thread.join(3)
        assert not thread.is_alive()
