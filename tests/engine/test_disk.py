"""A full disk: on a real 4 MiB tmpfs mounted by the test (needs root).

Up front: a file bigger than the free space is refused before a byte is fetched. Mid-way: a
file of unknown size fills the disk; the download pauses with a clear message, keeps its
state, and completes once space is back. A file whose blocks were reserved up front
(posix_fallocate) is not hurt when the disk fills up afterwards.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest
from faultserver import make_data
from freight.engine.files import PartFile
from freight.errors import DiskFullError
from freight.store import Store

from .conftest import sha256

MIB = 1024 * 1024


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the disk-full tests: {reason}")
    pytest.skip(reason)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 4 MiB tmpfs; yields its path and unmounts it afterwards."""
    if os.geteuid() != 0:
        _unavailable("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        _unavailable(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full (down to the last byte); return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        block = 1 << 20
        while block:
            try:
                os.write(fd, b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                block //= 2
    finally:
        os.close(fd)
    return filler


def test_too_big_for_the_disk_fails_up_front(fr, fault_server, small_fs):
    data = make_data(6 * MIB, seed=50)
    url = fault_server.add("/huge.iso", data=data, etag="v1", rate=8 * MIB)
    res = fr.run(url, "-d", str(small_fs), json_out=False)
    assert res.code == 1, res
    assert "space" in res.stderr.lower() or "disk full" in res.stderr.lower(), res.stderr
    store = Store(fr.db)  # the database is intact and says why
    try:
        download = store.get(1)
    finally:
        store.close()
    assert download.state == "paused"
    assert download.error_kind == "disk_full"
    assert "huge.iso" not in os.listdir(small_fs)
    # Hardly anything was fetched: the probe's connection was dropped at once.
    assert fault_server.wait_idle("/huge.iso").bytes_sent < 1 * MIB

    # Space is back (a bigger filesystem): the same command completes.
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_fs)], check=True)
    res2 = fr.run(url, "-d", str(small_fs))
    assert res2.code == 0, res2
    assert sha256((small_fs / "huge.iso").read_bytes()) == sha256(data)


def test_disk_full_mid_download_pauses_and_resumes(fr, fault_server, small_fs, kill_after):
    data = make_data(3 * MIB, seed=51)
    # Unknown size: no up-front check is possible, and nothing is reserved.
    url = fault_server.add(
        "/stream.bin", data=data, chunked=True, ignore_range=True, rate=1 * MIB
    )
    proc = fr.start(url, "-d", str(small_fs))
    kill_after(proc)
    part = small_fs / "stream.bin.part"
    deadline = time.monotonic() + 15
    while not (part.exists() and part.stat().st_size >= 256 * 1024):
        assert time.monotonic() < deadline, "the download did not start"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    filler = fill(small_fs)
    res = fr.finish(proc, None, timeout=20)
    assert res.code == 1, res
    record = res.record
    assert record["state"] == "paused"
    assert record["error_kind"] == "disk_full"
    assert "disk full" in record["error"].lower() or "space" in record["error"].lower()
    assert fr.download().state == "paused"

    filler.unlink()
    fault_server.add("/stream.bin", data=data, chunked=True, ignore_range=True)  # unthrottled
    res2 = fr.run(url, "-d", str(small_fs))
    assert res2.code == 0, res2
    assert sha256((small_fs / "stream.bin").read_bytes()) == sha256(data)


def test_reserved_space_survives_a_disk_that_fills_up(fr, fault_server, small_fs, kill_after):
    data = make_data(3 * MIB, seed=52)
    url = fault_server.add("/known.bin", data=data, etag="v1", rate=1 * MIB)
    proc = fr.start(url, "-d", str(small_fs), "-x", "4")
    kill_after(proc)
    fr.wait_done(proc, 256 * 1024)
    fill(small_fs)
    res = fr.finish(proc, None, timeout=30)
    assert res.code == 0, res
    assert sha256((small_fs / "known.bin").read_bytes()) == sha256(data)


def test_background_preallocation_too_big_fails_the_first_write_and_every_later_one(small_fs):
    # On a 4 MiB tmpfs the 8 MiB reservation fails: the writer, not the allocating thread,
    # hears of it, as DiskFullError, and no byte lands in the file.
    part = PartFile(str(small_fs / "big.part"))
    try:
        part.preallocate_in_background(8 * MIB)
        for _ in range(2):
            with pytest.raises(DiskFullError):
                part.pwrite(b"x" * 4096, 0)
        with pytest.raises(DiskFullError):
            part.sync()
    finally:
        part.close()
    assert os.path.getsize(small_fs / "big.part") == 0


def test_background_preallocation_reserves_before_the_first_write_lands(small_fs):
    part = PartFile(str(small_fs / "fits.part"))
    try:
        part.preallocate_in_background(3 * MIB)
        part.pwrite(b"tail", 3 * MIB - 4)
        assert part.size_on_disk() == 3 * MIB
        # The blocks are reserved: a filler now gets only what is left.
        filler = fill(small_fs)
        assert filler.stat().st_size <= 1 * MIB
        part.pwrite(b"\xff" * MIB, MIB)  # writes into reserved blocks still succeed
        part.sync()
    finally:
        part.close()
    data = (small_fs / "fits.part").read_bytes()
    assert data[MIB:2 * MIB] == b"\xff" * MIB and data[-4:] == b"tail"
