"""The one syntax of an expected checksum, and the digest of a finished part file.

A checksum is written ``ALGO:HEX`` or ``ALGO=HEX`` (the form ``sha256sum`` users type),
ALGO one of sha256, sha512, sha1, md5 (any case), HEX the digest in hexadecimal with exactly
as many digits as the algorithm's digest has. Stored and sent normalised: ``algo:hex``, lower
case. A bad one raises InputError and changes nothing.
"""

from __future__ import annotations

import os

from freight.engine.files import PartFile
from freight.errors import InputError

#: Supported algorithms → hex digits of their digest.
HEX_DIGITS = {"sha256": 64, "sha512": 128, "sha1": 40, "md5": 32}
_HEX = frozenset("0123456789abcdef")


def parse_checksum(text: str) -> tuple[str, str]:
    """'sha256:HEX' or 'sha256=HEX' → ('sha256', 'hex'); raises InputError."""
    for sep in (":", "="):
        algo, found, digest = text.partition(sep)
        if found:
            break
    else:
        raise InputError(f"checksum must look like sha256=HEX, not {text!r}")
    algo, digest = algo.strip().lower(), digest.strip().lower()
    digits = HEX_DIGITS.get(algo)
    if digits is None:
        raise InputError(f"unsupported checksum algorithm {algo!r} (sha256, sha512, sha1, md5)")
    if not digest or not _HEX.issuperset(digest):
        raise InputError(f"checksum digest must be hexadecimal: {digest!r}")
    if len(digest) != digits:
        raise InputError(f"a {algo} digest has {digits} hex digits")
    return algo, digest


def normalize_checksum(text: str) -> str:
    """Any accepted spelling → 'algo:hex' (lower case); raises InputError."""
    algo, digest = parse_checksum(text)
    return f"{algo}:{digest}"


def digest(part: PartFile, algo: str, size: int) -> str:
    """The hex digest of the first ``size`` bytes of ``part``."""
    if algo == "sha256":
        return part.sha256(size)
    import hashlib  # only when a checksum is asked for (~3 ms of start-up otherwise)

    state = hashlib.new(algo)
    offset = 0
    while offset < size:
        chunk = os.pread(part.fd, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        state.update(chunk)
        offset += len(chunk)
    return state.hexdigest()
