"""Moving a file to a name that must not exist, in one call: renameat2(RENAME_NOREPLACE).

POSIX ``rename`` replaces its target. ``link`` + ``unlink`` (files.finalize's portable way)
fails on an existing target, but costs two calls and needs hard links. Linux (3.15) has
``renameat2(2)`` with ``RENAME_NOREPLACE``: one atomic call that fails with ``EEXIST`` when
the name exists. Python has no binding for it; glibc (2.28) and musl (1.2.4) do, reached
here through ctypes. Where the C library has none (another OS, an older libc),
:func:`rename_noreplace` answers False at once; where the kernel or the filesystem refuses
the flag (``EINVAL``: NFS, FUSE without rename2, overlays on top of them; ``ENOSYS``: a kernel
before 3.15) it answers False too: the caller then takes its portable path.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

#: <linux/fs.h>: fail with EEXIST instead of replacing the target.
RENAME_NOREPLACE = 1
_AT_FDCWD = -100

#: What the call answers when it cannot be done this way here (as opposed to a real error
#: about these files): no such call, or a filesystem without the flag or without renames
#: of this kind. The portable path then gives the real answer (its own error, if any).
_NOT_HERE = frozenset({
    errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP,
})
#: Those that speak for the whole filesystem (not for one folder, as EPERM and EXDEV may).
_NOT_ON_THIS_FILESYSTEM = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})
#: The devices (st_dev) whose filesystem refused the flag: not asked again.
_refused: set[int] = set()


def _bind() -> Callable[[int, bytes, int, bytes, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here, not at import: the CLI's every start would pay for it

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int

    def call(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> int:
        """0, or the errno it failed with. (Like every foreign call through ctypes.CDLL,
        it runs without the GIL.)"""
        if function(olddirfd, old, newdirfd, new, flags) == 0:
            return 0
        return ctypes.get_errno()

    return call


#: renameat2 through ctypes, bound on first use (_bound); None where there is none.
_renameat2: Callable[[int, bytes, int, bytes, int], int] | None = None
_bound = False


def _kernel_rename(source: bytes, target: bytes) -> int:
    """The one call that meets the kernel: 0, or the errno it failed with."""
    assert _renameat2 is not None
    return _renameat2(_AT_FDCWD, source, _AT_FDCWD, target, RENAME_NOREPLACE)


def available() -> bool:
    global _renameat2, _bound
    if not _bound:
        _renameat2, _bound = _bind(), True
    return _renameat2 is not None


def rename_noreplace(source: str, target: str, device: int | None = None) -> bool:
    """Rename ``source`` to ``target`` unless ``target`` exists: True when done, False when
    it cannot be done this way here (nothing changed: take the portable path).
    FileExistsError when ``target`` exists; OSError for any other failure. ``device``: the
    source's st_dev, to remember a filesystem that refuses the flag."""
    global _renameat2
    if not available() or device in _refused:
        return False
    failed = _kernel_rename(os.fsencode(source), os.fsencode(target))
    if failed == 0:
        return True
    if failed == errno.ENOSYS:  # the kernel has no such call: never ask it again
        _renameat2 = None
    elif failed in _NOT_ON_THIS_FILESYSTEM and device is not None:
        _refused.add(device)
    if failed in _NOT_HERE:
        return False
    raise OSError(failed, os.strerror(failed), source, None, target)
