"""The file work of a finished download, in as few calls as the rules allow: the name's claim
hands back the .part it created (files.claim, shared.learnt's keep) and the finisher writes
through it; the folder is made only when missing; the final name is taken with
renameat2(RENAME_NOREPLACE) (noreplace.py), or link() where the filesystem refuses it — never
an overwrite, never a symlink swapped in for the .part. On real folders, a real SQLite store
and a real event loop."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from freight.engine import files, finisher, noreplace, shared
from freight.engine.http.reply import Reply
from freight.engine.http.validate import Validators
from freight.errors import LocalIOError
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Store

URL = "http://127.0.0.1:9/files/data.bin"
BODY = bytes(range(256)) * 400

def reply_for(body: bytes) -> Reply:
    """The answer of a server that sent ``body`` whole (what shared.learnt reads of it)."""
    return Reply(
        response=httpx.Response(200, headers={"content-type": "application/octet-stream"}),
        url=URL, status=200, start=0, end=len(body), size=len(body),
        ranged=False, validators=Validators(), encoded=False,
    )


def written_part(folder: Path, name: str, body: bytes = BODY) -> tuple[str, tuple[int, int]]:
    """A claimed, written and closed .part; its path and identity (as finish.seal has them)."""
    claimed, part = files.claim(str(folder), name)
    assert claimed == name
    try:
        part.pwrite(body, 0)
        status = part.status()
    finally:
        part.close()
    return part.path, (status.st_dev, status.st_ino)


def swap_for_symlink(part_path: str, target: Path) -> None:
    os.rename(part_path, part_path + ".moved-away")
    os.symlink(target, part_path)


@pytest.fixture
def kernel_answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], list[str]]]:
    """Make renameat2 fail with an errno. No filesystem here lacks RENAME_NOREPLACE (tmpfs,
    ext4, xfs, btrfs and overlay all have it; no FUSE filesystem is installed and NFS cannot
    be mounted), so the answer is injected at the one call that meets the kernel:
    noreplace._kernel_rename. Everything after it is real."""
    noreplace.available()  # bound now, so that what is set here stays
    monkeypatch.setattr(noreplace, "_renameat2", noreplace._renameat2)  # restored after
    monkeypatch.setattr(noreplace, "_refused", set())

    def answer(code: int) -> list[str]:
        calls: list[str] = []

        def fake(source: bytes, target: bytes) -> int:
            calls.append(os.fsdecode(target))
            return code

        if noreplace._renameat2 is None:  # a C library without it: the call is the fake's
            monkeypatch.setattr(noreplace, "_renameat2", lambda *_: code)
        monkeypatch.setattr(noreplace, "_kernel_rename", fake)
        return calls

    yield answer


# -- the claim ----------------------------------------------------------------------------


def test_the_claim_hands_back_the_part_it_created_open_for_reading_and_writing(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"theirs")
    name, part = files.claim(str(tmp_path), "f.bin")
    try:
        assert name == "f (1).bin" and part.path == str(tmp_path / "f (1).bin.part")
        part.pwrite(b"hello", 0)
        assert part.sha256() == hashlib.sha256(b"hello").hexdigest()  # read back: O_RDWR
        assert os.path.samestat(part.status(), os.stat(part.path))
    finally:
        part.close()
    assert (tmp_path / "f.bin").read_bytes() == b"theirs"


def test_a_missing_folder_is_made_when_the_part_is_created(tmp_path):
    folder = tmp_path / "new" / "deeper"
    assert files.reserve(str(folder), "f.bin") == "f.bin"
    assert (folder / "f.bin.part").is_file()


def test_learnt_keeps_the_part_it_claims_open_and_locked_only_when_asked(tmp_path, store):
    tmp_path = tmp_path / "dl"
    download = store.add(URL, str(tmp_path), state=DownloadState.ACTIVE)
    kept: list = []
    fields = shared.learnt(download, reply_for(BODY), kept)
    assert fields["name"] == "data.bin"
    [part] = kept
    try:
        assert part.path == str(tmp_path / "data.bin.part") and part.fd >= 0
        other = os.open(part.path, os.O_RDONLY)
        try:  # as open_locked gives it: another Freight process is refused
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    finally:
        part.close()
    # Without asking, the claim is only a name (the threads' engine reopens the part).
    fields = shared.learnt(download, reply_for(BODY))
    assert fields["name"] == "data (1).bin"
    assert (tmp_path / "data (1).bin.part").is_file()


# -- the final name -----------------------------------------------------------------------


def test_rename_noreplace_never_replaces(tmp_path):
    (tmp_path / "a").write_bytes(b"mine")
    (tmp_path / "b").write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        noreplace.rename_noreplace(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "a").read_bytes() == b"mine" and (tmp_path / "b").read_bytes() == b"theirs"
    assert noreplace.rename_noreplace(str(tmp_path / "a"), str(tmp_path / "c"))
    assert (tmp_path / "c").read_bytes() == b"mine" and not (tmp_path / "a").exists()
    with pytest.raises(FileNotFoundError):
        noreplace.rename_noreplace(str(tmp_path / "a"), str(tmp_path / "d"))


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP])
def test_a_filesystem_that_refuses_the_flag_gets_the_link_path(tmp_path, kernel_answers, code):
    calls = kernel_answers(code)
    part_path, identity = written_part(tmp_path, "g.txt")
    (tmp_path / "g.txt").write_bytes(b"theirs")  # taken meanwhile
    assert files.finalize(part_path, str(tmp_path), "g.txt", identity) == "g (1).txt"
    assert calls == [str(tmp_path / "g.txt")]  # asked once; link() found the name taken
    assert (tmp_path / "g.txt").read_bytes() == b"theirs"
    assert (tmp_path / "g (1).txt").read_bytes() == BODY
    assert not os.path.lexists(part_path)
    # Not asked again: ENOSYS (no such call in this kernel), EINVAL and EOPNOTSUPP (this
    # filesystem has no such flag); EPERM may be this folder's alone: asked per file.
    part_path, identity = written_part(tmp_path, "h.txt")
    assert files.finalize(part_path, str(tmp_path), "h.txt", identity) == "h.txt"
    assert len(calls) == (2 if code == errno.EPERM else 1)
    assert (tmp_path / "h.txt").read_bytes() == BODY and not os.path.lexists(part_path)


def without_renameat2(monkeypatch: pytest.MonkeyPatch) -> None:
    noreplace.available()  # bound now, so that None stays
    monkeypatch.setattr(noreplace, "_renameat2", None)


def test_a_c_library_without_renameat2_gets_the_link_path(tmp_path, monkeypatch):
    without_renameat2(monkeypatch)
    part_path, identity = written_part(tmp_path, "g.txt")
    (tmp_path / "g.txt").write_bytes(b"theirs")
    assert files.finalize(part_path, str(tmp_path), "g.txt", identity) == "g (1).txt"
    assert (tmp_path / "g.txt").read_bytes() == b"theirs"
    assert (tmp_path / "g (1).txt").read_bytes() == BODY and not os.path.lexists(part_path)


def test_a_rename_that_fails_for_real_is_a_clear_error_and_keeps_the_part(
    tmp_path, kernel_answers
):
    kernel_answers(errno.EIO)
    part_path, identity = written_part(tmp_path, "g.txt")
    with pytest.raises(LocalIOError, match="g.txt"):
        files.finalize(part_path, str(tmp_path), "g.txt", identity)
    assert Path(part_path).read_bytes() == BODY and not (tmp_path / "g.txt").exists()


@pytest.mark.parametrize("way", ["renameat2", "link"])
def test_a_symlink_swapped_in_for_the_part_before_the_rename_never_becomes_the_final_file(
    tmp_path, monkeypatch, way
):
    if way == "link":
        without_renameat2(monkeypatch)
    folder = tmp_path / "dl"
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    part_path, identity = written_part(folder, "f.bin")
    swap_for_symlink(part_path, outside)
    with pytest.raises(LocalIOError, match="symbolic link"):
        files.finalize(part_path, str(folder), "f.bin", identity)
    assert not os.path.lexists(folder / "f.bin")
    assert outside.read_bytes() == b"precious"


@pytest.mark.parametrize("way", ["renameat2", "link"])
def test_a_symlink_swapped_in_the_instant_before_the_move_is_given_back(
    tmp_path, monkeypatch, way
):
    """The swap lands between the check of the .part and the move (a race made certain here
    by doing it at the move's own call): the final name is checked once taken and given
    back, so it never stays on the link."""
    folder = tmp_path / "dl"
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    part_path, identity = written_part(folder, "f.bin")
    if way == "renameat2":
        real = noreplace._kernel_rename

        def swap_then_rename(source: bytes, target: bytes) -> int:
            swap_for_symlink(part_path, outside)
            return real(source, target)

        monkeypatch.setattr(noreplace, "_kernel_rename", swap_then_rename)
    else:
        without_renameat2(monkeypatch)
        real_link = os.link

        def swap_then_link(source: str, target: str) -> None:
            swap_for_symlink(part_path, outside)
            real_link(source, target)

        monkeypatch.setattr(files.os, "link", swap_then_link)
    with pytest.raises(LocalIOError, match="symbolic link"):
        files.finalize(part_path, str(folder), "f.bin", identity)
    assert not os.path.lexists(folder / "f.bin")
    assert os.path.islink(part_path)  # given back where it was found
    assert outside.read_bytes() == b"precious"
    assert Path(part_path + ".moved-away").read_bytes() == BODY


# -- the finisher ---------------------------------------------------------------------------


class Loop:
    """A real event loop on a thread, with a real Finisher."""

    def __init__(self, store: Store) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.finisher = finisher.Finisher(StateKeeper(store), self.loop)

    def finish(self, download: Download, body: bytes, learn: finisher.Learn | None) -> Download:
        async def run() -> Download:
            return await self.finisher.finish(download, body, learn)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def close(self) -> None:
        self.finisher.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop(store: Store) -> Iterator[Loop]:
    running = Loop(store)
    yield running
    running.close()


@pytest.fixture
def reopened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The .part files the finisher opens by their name (it calls shared.open_locked)."""
    paths: list[str] = []
    real = finisher.open_locked

    def counted(path: str, **kwargs: object) -> files.PartFile:
        paths.append(path)
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(finisher, "open_locked", counted)
    return paths


def test_the_finisher_writes_through_the_part_its_claim_created(
    tmp_path, store, loop, reopened
):
    folder = tmp_path / "dl"  # made by the claim
    download = store.add(URL, str(folder), state=DownloadState.ACTIVE)
    done = loop.finish(download, BODY, lambda keep: shared.learnt(download, reply_for(BODY), keep))
    assert done.state is DownloadState.COMPLETED and done.name == "data.bin"
    assert reopened == []  # written through the claim's own descriptor
    assert [p.name for p in folder.iterdir()] == ["data.bin"]
    assert (folder / "data.bin").read_bytes() == BODY


def test_a_named_download_reopens_its_part_and_a_longer_one_is_cut_to_size(
    tmp_path, store, loop, reopened
):
    """Its name was claimed before (a slow body records it early): the .part is reopened,
    and what an earlier attempt left past the body's end is cut off by the one fstat."""
    folder = tmp_path / "dl"
    download = store.add(URL, str(folder), state=DownloadState.ACTIVE)
    download = store.update(download.id, **shared.learnt(download, reply_for(BODY)))
    assert download.part_path is not None
    Path(download.part_path).write_bytes(b"x" * (len(BODY) + 1000))
    done = loop.finish(download, BODY, None)
    assert done.state is DownloadState.COMPLETED and done.size == len(BODY)
    assert reopened == [download.part_path]
    assert [p.name for p in folder.iterdir()] == ["data.bin"]
    assert (folder / "data.bin").read_bytes() == BODY
