"""A server that codes its body although Freight asked for identity: a decompression bomb
(1 MiB of gzip that expands to 1 GiB) and content-coded ranges, through a real Transfer and
through the real ``freight get`` process.

The bomb is built once per module, streamed to a file (never held in memory), and served
from that file in 64 KiB writes; the tests never read a downloaded file whole either.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import subprocess
import sys
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from faultserver import make_data
from freight.engine.http.decoding import DECODED_FLOOR
from freight.models import EXIT_FAILED, DownloadState
from rawserver import RawServer, read_head

BOMB_DECODED = 1 << 30  # 1 GiB of zeros...
BOMB_CODED_MAX = 1100 * 1024  # ...in about 1 MiB of gzip
#: What a failed bomb may leave on disk: the floor and one decoded piece (read_size).
PART_MAX = DECODED_FLOOR + (1 << 20)
#: The freight get process's peak memory: its own footprint (~45 MiB here) and a few pieces;
#: httpx's own decoder, a whole chunk's expansion at once, took ~290 MiB.
PEAK_MEMORY_KIB = 128 * 1024
FREIGHT = str(Path(sys.executable).with_name("freight"))

#: Runs argv[1:], exits with its code and prints its peak memory (KiB on Linux) to stderr.
PEAK_OF_CHILD = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stderr=subprocess.STDOUT).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "zeros.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    with path.open("wb") as out:
        for _ in range(BOMB_DECODED >> 20):
            out.write(packer.compress(block))
        out.write(packer.flush())
    assert path.stat().st_size <= BOMB_CODED_MAX
    return path


def serving(path: Path, *, framed: bool, asked: list[str] | None = None) -> Handler:
    """A 200 of ``path``'s bytes as ``Content-Encoding: gzip``: with a Content-Length
    (``framed``) or delimited by the connection's close (RFC 9112 §6.3). Each request line
    is appended to ``asked``."""
    asked = [] if asked is None else asked

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _ = await read_head(reader)
            if not line:
                return
            asked.append(line)
            length = f"Content-Length: {path.stat().st_size}" if framed else "Connection: close"
            writer.write(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Encoding: gzip\r\n{length}\r\n\r\n".encode()
            )
            with path.open("rb") as source:
                while block := source.read(64 * 1024):
                    writer.write(block)
                    await writer.drain()
            if not framed:
                return

    return handler


def parts_only(folder: Path) -> list[tuple[str, int]]:
    """The files in ``folder`` with their sizes; each must still be a ``.part``."""
    found = [(entry.name, entry.stat().st_size) for entry in os.scandir(folder)]
    assert all(name.endswith(".part") for name, _ in found), found
    return found


@pytest.mark.parametrize("framed", [True, False], ids=["content-length", "until-close"])
def test_a_gzip_bomb_fails_clearly_with_a_small_part(sandbox, bomb: Path, framed: bool) -> None:
    asked: list[str] = []
    with RawServer(serving(bomb, framed=framed, asked=asked)) as srv:
        result = sandbox.run(srv.url("/zeros.img"))
    assert result.state == DownloadState.FAILED
    assert result.error_kind == "protocol_violation"
    assert "decompression bomb" in (result.error or "")
    assert "max_expansion" in (result.error or "")  # the setting to change, named
    assert all(size <= PART_MAX for _, size in parts_only(sandbox.folder))
    # Not retried (the answer would not change): the lean reader's probe, which hands the
    # coded body over to httpx, and httpx's one request for it.
    assert len(asked) == 2, asked
    sandbox.assert_outside_unchanged()


def test_a_large_expansion_is_let_through_when_the_user_turns_the_bound_off(
    sandbox, tmp_path: Path
) -> None:
    # 80 MiB of zeros (~1000x): over the default bound past 64 MiB, saved with the bound off.
    size = DECODED_FLOOR + (16 << 20)
    coded = tmp_path / "zeros.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with coded.open("wb") as out:
        for _ in range(size >> 20):
            out.write(packer.compress(bytes(1 << 20)))
        out.write(packer.flush())
    with RawServer(serving(coded, framed=True)) as srv:
        refused = sandbox.run(srv.url("/zeros.img"))
        assert refused.state == DownloadState.FAILED and "max_expansion" in (refused.error or "")
        os.unlink(sandbox.folder / parts_only(sandbox.folder)[0][0])
        done = sandbox.run(srv.url("/zeros.img"), max_expansion=0)
    assert done.state == DownloadState.COMPLETED, done.error
    assert done.path is not None and os.path.getsize(done.path) == size == done.size


def test_freight_get_stops_a_gzip_bomb_with_bounded_memory(tmp_path: Path, bomb: Path) -> None:
    home, folder = tmp_path / "home", tmp_path / "dl"
    home.mkdir()
    env = dict(os.environ, FREIGHT_HOME=str(home), HOME=str(home), COLUMNS="200")
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(name, None)
    log = tmp_path / "freight-get.log"
    with RawServer(serving(bomb, framed=True)) as srv, log.open("wb") as sink:
        # A small launcher runs `freight get` and reports its child's peak memory: a child
        # forked from this test process would count this process's own pages (Linux keeps
        # the high-water mark across exec).
        done = subprocess.run(
            [sys.executable, "-c", PEAK_OF_CHILD, FREIGHT, "get", "-d", str(folder),
             srv.url("/zeros.img")],
            env=env, stdout=sink, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            timeout=120,
        )
    peak_kib = int(done.stderr.decode().split()[-1])
    message = " ".join(log.read_text().split())
    assert done.returncode == EXIT_FAILED, message
    assert "decompression bomb" in message and "max_expansion" in message
    assert "Traceback" not in message
    assert all(size <= PART_MAX for _, size in parts_only(folder))
    # Linux reports KiB: a few decoded pieces at a time, never the expansion of a chunk.
    assert peak_kib < PEAK_MEMORY_KIB, peak_kib


# -- content-coded ranges ---------------------------------------------------------------------


def coded_after_the_probe(data: bytes, seen: list[str]) -> Handler:
    """Identity for the probe and for a range from byte 0; every other range gzip-coded, with
    a Content-Range in coded bytes (a broken cache in front of the origin)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, headers = await read_head(reader)
            if not line:
                return
            asked = headers.get("range", "")
            seen.append(asked)
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", asked)
            first = int(match[1]) if match else 0
            last = int(match[2]) if match and match[2] else len(data) - 1
            body, coding = data[first:last + 1], ""
            if first > 0:
                body, coding = gzip.compress(body, mtime=0), "Content-Encoding: gzip\r\n"
            writer.write(
                f'HTTP/1.1 206 Partial Content\r\nETag: "v1"\r\n{coding}'
                f"Content-Range: bytes {first}-{first + len(body) - 1}/{len(data)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            await writer.drain()

    return handler


@pytest.mark.parametrize("lean_reader", [True, False], ids=["lean", "httpx"])
def test_a_content_coded_range_is_never_spliced(sandbox, lean_reader: bool) -> None:
    data = make_data(400_000, seed=23)
    seen: list[str] = []
    with RawServer(coded_after_the_probe(data, seen)) as srv:
        result = sandbox.run(srv.url("/f.bin"), lean_reader=lean_reader,
                             min_split_size=64 * 1024)
    assert result.state == DownloadState.COMPLETED, result.error
    assert (sandbox.folder / "f.bin").read_bytes() == data  # no coded range in it
    assert any(not r.startswith("bytes=0-") for r in seen), seen  # ranges were tried...
    assert "bytes=0-" in seen, seen  # ...refused, and the file came as one stream from byte 0
    sandbox.assert_outside_unchanged()
