"""Files on disk: claiming a free name, the preallocated ``NAME.part``, and the final rename
(the names themselves are chosen in names.py; re-exported here for the callers of files).

Nothing here ever writes outside the chosen folder or replaces an existing file:
``NAME.part`` is only ever opened with ``O_NOFOLLOW`` (a symlink swapped in for it, while a
download is paused or before a resume, is refused, never written through), and
:func:`finalize` gives the final name only to the very inode that was written.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator

from freight.engine import noreplace
from freight.engine.names import FALLBACK_NAME as FALLBACK_NAME
from freight.engine.names import MAX_NAME_BYTES as MAX_NAME_BYTES
from freight.engine.names import choose_name as choose_name
from freight.engine.names import name_from_content_disposition as name_from_content_disposition
from freight.engine.names import name_from_url as name_from_url
from freight.engine.names import numbered as numbered
from freight.engine.names import numbered_within_limit
from freight.engine.names import sanitize as sanitize
from freight.errors import BusyError, DiskFullError, LocalIOError

PART_SUFFIX = ".part"
#: Never follow a symlink where the .part should be (absent where the OS has no such flag).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def reserve(folder: str, name: str) -> str:
    """Create ``folder/NAME.part`` exclusively for a free NAME and return NAME.

    A name is free when neither it nor its .part exists. Creating the .part with O_EXCL claims
    the name against other downloads running at the same time.
    """
    candidate, part = claim(folder, name)
    part.close()
    return candidate


def claim(folder: str, name: str) -> tuple[str, PartFile]:
    """:func:`reserve`, keeping open (read-write) the .part it created: the caller writes
    through it, one open and one close fewer than reopening it by its name."""
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | _NOFOLLOW
    for candidate, final in _untaken(folder, name):
        path = final + PART_SUFFIX
        try:
            try:
                fd = os.open(path, flags, 0o644)
            except FileNotFoundError:
                # The folder is missing: made only then (a stat, a mkdir and a stat per
                # file fewer than making sure every time), and the open tried again.
                os.makedirs(folder, exist_ok=True)
                fd = os.open(path, flags, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _map_os_error(exc, folder) from exc
        return candidate, PartFile(path, fd=fd)
    raise LocalIOError(f"no free name for {name!r} in {folder}")


def _untaken(folder: str, name: str) -> Iterator[tuple[str, str]]:
    """'name.ext', 'name (1).ext', ... that do not exist in folder yet, with their paths.

    Existence is only a hint: callers claim a name atomically (O_EXCL, link).
    """
    for candidate, final in _numbered_paths(folder, name):
        if not os.path.lexists(final):
            yield candidate, final


def _numbered_paths(folder: str, name: str) -> Iterator[tuple[str, str]]:
    for n in range(10_000):
        candidate = numbered_within_limit(name, n)
        yield candidate, os.path.join(folder, candidate)


def _map_os_error(exc: OSError, where: str) -> LocalIOError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"disk full writing {where}", path=where)
    return LocalIOError(f"{exc.strerror or exc} ({where})", path=where, errno=exc.errno)


@functools.cache
def boot_id() -> str | None:
    """This boot's identity (Linux); None where unknown, which makes unsynced progress
    records untrusted (see Store.save_fast_progress). Read once: it cannot change while this
    process lives."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def free_space(folder: str) -> int:
    return shutil.disk_usage(folder).free


class PartFile:
    """``NAME.part``: written at offsets with pwrite by many threads at once, then renamed.

    pwrite on one shared descriptor needs no lock: each call carries its own offset.
    """

    def __init__(
        self,
        path: str,
        *,
        create: bool = True,
        on_sync_failure: Callable[[], None] | None = None,
        fd: int | None = None,
    ) -> None:
        """``fd``: a read-write descriptor of ``path`` to take over (claim made it)."""
        self.path = path
        self.fd = self._open(path, create) if fd is None else fd
        self.on_sync_failure = on_sync_failure  # told when fdatasync fails (see sync)
        # Set while preallocate_in_background runs (and kept if it failed): see _settle.
        self._allocating: threading.Thread | None = None
        self._allocation_error: LocalIOError | None = None

    @staticmethod
    def _open(path: str, create: bool) -> int:
        try:
            return os.open(path, os.O_RDWR | (os.O_CREAT if create else 0) | _NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP or os.path.islink(path):
                raise LocalIOError(
                    f"{path} is a symbolic link: Freight never writes through one "
                    "(remove it to download again)", path=path, errno=exc.errno,
                ) from exc
            raise _map_os_error(exc, path) from exc

    def lock(self) -> None:
        """Take this .part for this process alone, so that `freight get` and the daemon never
        write the same download at once. The kernel frees the lock when the process dies."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks here
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(
                f"{self.path} is being downloaded by another Freight process", path=self.path
            ) from None

    def size_on_disk(self) -> int:
        return self.status().st_size

    def status(self) -> os.stat_result:
        """One fstat: the size on disk and the identity (st_dev, st_ino) at once."""
        self._settle()
        return os.fstat(self.fd)

    def preallocate(self, size: int) -> None:
        """Reserve the blocks now so that a full disk shows up before the transfer, not in it."""
        try:
            if size > 0:
                os.posix_fallocate(self.fd, 0, size)
            os.ftruncate(self.fd, size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # e.g. some network filesystems
                os.ftruncate(self.fd, size)
                return
            raise _map_os_error(exc, self.path) from exc

    def preallocate_in_background(self, size: int) -> None:
        """preallocate(size) on a thread of its own; every write waits until it is done.

        Reserving the blocks is not free everywhere: tmpfs zeroes every page (~70 ms for
        256 MiB), and that time sat between the probe and the other connections. Run beside
        them, it hides behind their connect and first-byte time. Writes must still wait:
        where the filesystem has no fallocate, glibc emulates it by writing a zero into every
        block that reads as zero, which would race with a pwrite landing there.
        """
        def allocate() -> None:
            try:
                self.preallocate(size)
            except LocalIOError as exc:
                self._allocation_error = exc

        thread = threading.Thread(target=allocate, name="freight-preallocate", daemon=True)
        self._allocating = thread
        thread.start()

    def _settle(self) -> None:
        """Wait for a background preallocation; raise its error (on this and every later call)."""
        thread = self._allocating
        if thread is None:
            return
        thread.join()
        if self._allocation_error is not None:
            raise self._allocation_error
        self._allocating = None

    def truncate(self, size: int = 0) -> None:
        self._settle()
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise _map_os_error(exc, self.path) from exc

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        if self._allocating is not None:
            self._settle()
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self.fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise _map_os_error(exc, self.path) from exc

    def sync(self) -> None:
        """Make every byte written so far durable. When that fails (EIO, ENOSPC at
        writeback) the kernel may have dropped the dirty pages: whatever was recorded as
        written but unsynced is then told to be forgotten (``on_sync_failure``) before the
        error is raised; only the last synced checkpoint remains true."""
        self._settle()
        try:
            self._fdatasync()
        except OSError as exc:
            if self.on_sync_failure is not None:
                self.on_sync_failure()
            raise _map_os_error(exc, self.path) from exc

    def _fdatasync(self) -> None:
        os.fdatasync(self.fd)

    def identity(self) -> tuple[int, int]:
        """(device, inode) of the file written, to finalise that file and no other."""
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    def sha256(self, length: int | None = None) -> str:
        import hashlib  # only when a checksum is asked for

        digest = hashlib.sha256()
        offset = 0
        while length is None or offset < length:
            want = 1 << 20 if length is None else min(1 << 20, length - offset)
            chunk = os.pread(self.fd, want, offset)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()

    def close(self) -> None:
        if self._allocating is not None:
            self._allocating.join()  # it uses the descriptor; its error no longer matters
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def finalize(
    part_path: str, folder: str, name: str, identity: tuple[int, int] | None = None
) -> str:
    """Move the finished .part to its final name without replacing anything; return the name.

    ``renameat2(RENAME_NOREPLACE)`` (noreplace.py) where the kernel and the filesystem have
    it, else ``link`` + ``unlink``: both fail if the target exists, which makes the
    no-overwrite rule atomic; where the filesystem has no hard links either, a checked
    rename. Only the file written (``identity``: its device and inode) is given the name:
    neither rename nor link follows a symlink, so one swapped in for the .part would
    otherwise become the final "file"; the name is checked again once taken, and given back
    when it is not ours. Without ``identity``, the regular file found at ``part_path`` now
    (never a symlink).
    """
    if identity is None:
        found = os.lstat(part_path)
        identity = (found.st_dev, found.st_ino)
    # Checked before the move too, although the check after it alone would keep the final
    # name from staying on another file: a swap made while the download ran (the likely
    # one) is refused here, before the final name names it even for an instant; only one
    # made in the instant between this check and the move is given back afterwards.
    _check_ours(part_path, identity)
    renames = True  # until renameat2 says it cannot here
    # No existence check first (_untaken): the move itself fails on a taken name.
    for candidate, final in _numbered_paths(folder, name):
        if renames:
            try:
                renames = noreplace.rename_noreplace(part_path, final, identity[0])
            except FileExistsError:
                continue
            except OSError as exc:
                raise _map_os_error(exc, final) from exc
            if renames:
                _check_ours(final, identity, undo=functools.partial(os.rename, final, part_path))
                return candidate
        try:
            os.link(part_path, final)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                raise _map_os_error(exc, final) from exc
            if os.path.lexists(final):  # a plain rename would replace it
                continue
            try:
                os.rename(part_path, final)
            except OSError as exc2:
                raise _map_os_error(exc2, final) from exc2
            _check_ours(final, identity, undo=functools.partial(os.rename, final, part_path))
            return candidate
        _check_ours(final, identity, undo=functools.partial(os.unlink, final))
        os.unlink(part_path)
        return candidate
    raise LocalIOError(f"no free name for {name!r} in {folder}")


def _check_ours(
    path: str, identity: tuple[int, int], undo: Callable[[], None] | None = None
) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise _map_os_error(exc, path) from exc
    if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == identity:
        return
    if undo is not None:
        undo()
    raise LocalIOError(
        f"{path} is no longer the file Freight wrote (replaced by "
        f"{'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'another file'}); "
        "nothing was saved under the final name",
        path=path,
    )


def still_there(path: str | None, size: int | None) -> bool:
    """A finished file is where it was saved, at its size (not deleted or cut since)."""
    try:
        return path is not None and os.path.isfile(path) and (
            size is None or os.path.getsize(path) == size)
    except OSError:  # gone between the two looks
        return False


def remove_quietly(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
