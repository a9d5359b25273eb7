"""Hostile file names from a server: each ends in a safe name inside the chosen folder.

The name comes from Content-Disposition (``filename*`` first, RFC 6266 §4.3) or the URL's last
path segment; files.sanitize keeps only a last component without separators, control or
format characters, reserved Windows device names, leading dots, and at most 200 UTF-8 bytes.
"""

from __future__ import annotations

import os

import pytest
from faultserver import FaultServer, make_data
from freight.models import DownloadState

DATA = make_data(200_000, seed=8)

# (Content-Disposition value, the name that must result)
HOSTILE_DISPOSITIONS = [
    ('attachment; filename="../../bait.txt"', "bait.txt"),
    ('attachment; filename="/etc/passwd"', "passwd"),
    ("attachment; filename*=UTF-8''..%2F..%2Fevil.sh", "evil.sh"),
    ('attachment; filename="..\\\\..\\\\evil.bat"', "evil.bat"),
    ("attachment; filename*=UTF-8''C%3A%5CWindows%5Cwin.ini", "win.ini"),
    ("attachment; filename*=UTF-8''a%01b%1B%0Ac%7F.txt", "abc.txt"),
    # U+202E RIGHT-TO-LEFT OVERRIDE would show "invoice\u202etxt.exe" as "invoiceexe.txt".
    ("attachment; filename*=UTF-8''invoice%E2%80%AEtxt.exe", "invoicetxt.exe"),
    ('attachment; filename="CON.txt"', "_CON.txt"),
    ('attachment; filename="nul"', "_nul"),
    ('attachment; filename="COM1.tar.gz"', "_COM1.tar.gz"),
    ('attachment; filename="lpt9"', "_lpt9"),
    ('attachment; filename=".bashrc"', "bashrc"),
    ('attachment; filename=".."', "download"),
    ('attachment; filename="."', "download"),
    ('attachment; filename="   "', "f.bin"),  # blank: the URL's name is next
    ('attachment; filename="a<b>c:d|e?f*g\\"h.txt"', None),  # checked below: no forbidden char
]


@pytest.mark.parametrize(("disposition", "expected"), HOSTILE_DISPOSITIONS)
def test_hostile_content_disposition_gives_a_safe_name(
    sandbox, fault_server: FaultServer, disposition: str, expected: str | None
) -> None:
    url = fault_server.add("/f.bin", DATA, etag="v1", content_disposition=disposition)
    result = sandbox.run(url)
    assert result.state == DownloadState.COMPLETED, result.error
    assert result.name is not None
    if expected is not None:
        assert result.name == expected
    assert not any(c in result.name for c in '<>:"/\\|?*') and result.name.isprintable()
    assert sandbox.files() == [result.name]
    assert (sandbox.folder / result.name).read_bytes() == DATA
    sandbox.assert_outside_unchanged()


def test_overlong_name_is_cut_to_200_bytes_keeping_the_extension(
    sandbox, fault_server: FaultServer
) -> None:
    long = "é" * 400 + ".iso"
    url = fault_server.add("/f.bin", DATA, content_disposition=f'attachment; filename="{long}"'
                           .encode().decode("latin-1"))
    result = sandbox.run(url)
    assert result.state == DownloadState.COMPLETED, result.error
    assert result.name is not None and result.name.endswith(".iso")
    assert len(result.name.encode()) <= 200
    assert sandbox.files() == [result.name]
    sandbox.assert_outside_unchanged()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/dl/..%2F..%2Fbait.txt", "bait.txt"),
        ("/dl/%2Fetc%2Fpasswd", "passwd"),
        ("/dl/%2E%2E", "download"),
        ("/dl/nul%00.txt", "_nul.txt"),  # NUL dropped, then a reserved name
    ],
)
def test_hostile_url_path_gives_a_safe_name(
    sandbox, fault_server: FaultServer, path: str, expected: str
) -> None:
    url = fault_server.add(path, DATA, etag="v1")
    result = sandbox.run(url)
    assert result.state == DownloadState.COMPLETED, result.error
    assert result.name == expected
    assert sandbox.files() == [expected]
    sandbox.assert_outside_unchanged()


def test_a_users_own_name_with_traversal_is_sanitised_too(
    sandbox, fault_server: FaultServer
) -> None:
    url = fault_server.add("/f.bin", DATA, etag="v1")
    result = sandbox.run(url, name="../../bait.txt")
    assert result.state == DownloadState.COMPLETED, result.error
    assert result.name == "bait.txt"
    assert (sandbox.folder / "bait.txt").read_bytes() == DATA
    sandbox.assert_outside_unchanged()


def test_existing_file_is_never_overwritten(sandbox, fault_server: FaultServer) -> None:
    (sandbox.folder / "report.pdf").write_bytes(b"the user's own file")
    url = fault_server.add("/x", DATA, content_disposition='attachment; filename="report.pdf"')
    result = sandbox.run(url)
    assert result.state == DownloadState.COMPLETED, result.error
    assert result.name == "report (1).pdf"
    assert (sandbox.folder / "report.pdf").read_bytes() == b"the user's own file"
    sandbox.assert_outside_unchanged()


@pytest.mark.parametrize("which", ["final", "part"])
def test_a_symlink_planted_in_the_folder_is_never_written_through(
    sandbox, fault_server: FaultServer, which: str
) -> None:
    """A link named like the download (or its .part) pointing outside stays untouched."""
    target = sandbox.root / "bait.txt"
    link = sandbox.folder / ("f.bin" if which == "final" else "f.bin.part")
    os.symlink(target, link)
    url = fault_server.add("/f.bin", DATA, etag="v1")
    result = sandbox.run(url)
    assert result.state == DownloadState.COMPLETED, result.error
    assert result.name == "f (1).bin"
    assert target.read_text() == "must stay\n"
    assert os.path.islink(link)
    assert (sandbox.folder / "f (1).bin").read_bytes() == DATA
