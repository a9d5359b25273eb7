"""Naming and the no-overwrite rule (freight.files), on a real folder."""

from __future__ import annotations

import os
import unicodedata

import pytest
from freight.engine import files
from freight.engine.files import (
    FALLBACK_NAME,
    MAX_NAME_BYTES,
    choose_name,
    finalize,
    name_from_content_disposition,
    name_from_url,
    numbered,
    reserve,
    sanitize,
)
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("/etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil.bat", "evil.bat"),
        ("a\x00b\nc\r\x1b.txt", "abc.txt"),
        ("report\u202ecod.exe", "reportcod.exe"),  # RLO would show "exe.doc"
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT1.tar.gz", "_LPT1.tar.gz"),
        ("nul", "_nul"),
        ("COM9.log", "_COM9.log"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("", FALLBACK_NAME),
        ("...", FALLBACK_NAME),
        (".", FALLBACK_NAME),
        ("..", FALLBACK_NAME),
        ("   ", FALLBACK_NAME),
        ("dir/", FALLBACK_NAME),
        (".bashrc", "bashrc"),  # never a hidden file
        ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
        ("cafe\u0301.txt", "caf\u00e9.txt"),  # NFC
        ("na\u00efve r\u00e9sum\u00e9.pdf", "na\u00efve r\u00e9sum\u00e9.pdf"),
    ],
)
def test_sanitize(raw, expected):
    assert sanitize(raw) == expected


def test_overlong_names_are_cut_keeping_the_extension():
    name = sanitize("a" * 300 + ".txt")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(".txt")
    wide = sanitize("\u00e9" * 300 + ".iso")
    assert len(wide.encode()) <= MAX_NAME_BYTES
    assert wide.endswith(".iso")
    wide.encode().decode()  # never cut inside a UTF-8 sequence
    assert set(wide.removesuffix(".iso")) == {"\u00e9"}


def _is_safe(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and name not in (".", "..")
        and not name.startswith(".")
        and not name.endswith((".", " "))
        and not any(unicodedata.category(c) in ("Cc", "Cf") for c in name)
        and len(name.encode()) <= MAX_NAME_BYTES
    )


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_any_name_becomes_a_safe_one(raw):
    name = sanitize(raw)
    assert _is_safe(name), repr(name)
    assert sanitize(name) == name  # stable: a sanitised name is left alone


def test_a_cut_name_never_ends_with_a_space():
    # Windows drops trailing spaces and dots: the saved name would not be the name we chose.
    name = sanitize("a" * 199 + " " + "b" * 10)
    assert _is_safe(name), repr(name)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # RFC 6266 §4.3: filename* wins over filename, whatever the order.
        ("attachment; filename=\"plain.txt\"; filename*=UTF-8''na%C3%AFve.txt", "na\u00efve.txt"),
        ("attachment; filename*=UTF-8''na%C3%AFve.txt; filename=\"plain.txt\"", "na\u00efve.txt"),
        ("attachment; filename*=utf-8''%E2%82%AC%20rates.pdf", "\u20ac rates.pdf"),
        ("attachment; filename*=iso-8859-1'en'%A3%20rates", "\u00a3 rates"),
        ('attachment; filename="a \\"quoted\\" name.txt"', 'a "quoted" name.txt'),
        ("attachment; filename=unquoted.bin", "unquoted.bin"),
        ("attachment; filename=\"fb.txt\"; filename*=UTF-8''%FF%FE.txt", "fb.txt"),
        ("inline", None),
        ("", None),
        (None, None),
    ],
)
def test_content_disposition(header, expected):
    assert name_from_content_disposition(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        'attachment; filename="../../etc/passwd"',
        "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd",
        'attachment; filename="/etc/passwd"',
        'attachment; filename="..\\\\..\\\\etc\\\\passwd"',
    ],
)
def test_traversal_in_content_disposition_ends_as_a_plain_name(header):
    assert choose_name(None, header, "http://h/x") == "passwd"


def test_choose_name_order():
    cd = "attachment; filename=server.bin"
    assert choose_name("mine.bin", cd, "http://h/url.bin") == "mine.bin"
    assert choose_name(None, cd, "http://h/url.bin") == "server.bin"
    assert choose_name(None, None, "http://h/dir/my%20file.iso?x=1#f") == "my file.iso"
    assert choose_name(None, None, "http://h/") == FALLBACK_NAME
    assert choose_name(None, None, "http://h/a/..%2F..%2Fetc%2Fpasswd") == "passwd"
    assert choose_name("../x", None, "http://h/y") == "x"  # the user's name is sanitised too
    assert name_from_url("http://h/dir/") == "dir"


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("name.ext", 0, "name.ext"),
        ("name.ext", 1, "name (1).ext"),
        ("a.tar.gz", 2, "a (2).tar.gz"),
        ("A.TAR.XZ", 1, "A (1).TAR.XZ"),
        ("noext", 1, "noext (1)"),
        ("v1.2.iso", 3, "v1.2 (3).iso"),
    ],
)
def test_numbered(name, n, expected):
    assert numbered(name, n) == expected


def test_reserve_never_takes_an_existing_name(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"mine")
    assert reserve(str(tmp_path), "f.bin") == "f (1).bin"
    assert (tmp_path / "f (1).bin.part").exists()
    # The .part of a download running at the same time claims its name too.
    assert reserve(str(tmp_path), "f.bin") == "f (2).bin"
    (tmp_path / "a.tar.gz").write_bytes(b"x")
    assert reserve(str(tmp_path), "a.tar.gz") == "a (1).tar.gz"
    # A dangling symlink is an existing name as well.
    os.symlink(tmp_path / "nowhere", tmp_path / "link.txt")
    assert reserve(str(tmp_path), "link.txt") == "link (1).txt"
    assert (tmp_path / "f.bin").read_bytes() == b"mine"


def test_finalize_never_overwrites(tmp_path):
    folder = str(tmp_path)
    name = reserve(folder, "g.txt")
    part = tmp_path / (name + ".part")
    part.write_bytes(b"downloaded")
    # Someone saves a file under our name while we download.
    (tmp_path / "g.txt").write_bytes(b"theirs")
    final = finalize(str(part), folder, name)
    assert final == "g (1).txt"
    assert (tmp_path / "g.txt").read_bytes() == b"theirs"
    assert (tmp_path / "g (1).txt").read_bytes() == b"downloaded"
    assert not part.exists()


def test_reserve_in_a_file_instead_of_a_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(files.LocalIOError):
        reserve(str(blocker / "sub"), "x.bin")


def test_part_file_pwrite_sync_and_digest(tmp_path):
    path = str(tmp_path / "x.part")
    part = files.PartFile(path)
    try:
        part.preallocate(10)
        assert part.size_on_disk() == 10
        part.pwrite(b"world", 5)
        part.pwrite(b"hello", 0)
        part.sync()
        import hashlib

        assert part.sha256() == hashlib.sha256(b"helloworld").hexdigest()
        assert part.sha256(5) == hashlib.sha256(b"hello").hexdigest()
        part.truncate(0)
        assert part.size_on_disk() == 0
    finally:
        part.close()
