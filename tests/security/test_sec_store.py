"""A damaged or foreign database is refused with a clear message and exit 1, byte for byte
untouched: Freight never migrates, repairs or empties a file it cannot trust (store.Store._open
checks PRAGMA application_id, user_version and quick_check before anything else)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from faultserver import FaultServer, make_data
from freight.store import APPLICATION_ID, Store

FREIGHT = str(Path(sys.executable).with_name("freight"))


def freight(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FREIGHT_HOME=str(home), HOME=str(home), COLUMNS="200")
    return subprocess.run([FREIGHT, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def real_database(path: Path, downloads: int = 40) -> None:
    """A genuine Freight database with enough rows to span several pages."""
    store = Store(path)
    for i in range(downloads):
        store.add(f"http://127.0.0.1:1/file-{i}-{'x' * 200}.bin", "/tmp/nowhere")
    store.close()


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def text_file(path: Path) -> None:
    path.write_text("my notes, not a database\n" * 100)


def foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    db.execute("INSERT INTO contacts VALUES ('Ada', '123')")
    db.commit()
    db.close()


def newer_schema(path: Path) -> None:
    real_database(path, downloads=2)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 999")
    db.commit()
    db.close()


def damaged_pages(path: Path) -> None:
    real_database(path)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    for offset in range(2 * page, len(data), page):  # page 1 (the schema) stays intact
        data[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


def truncated_header(path: Path) -> None:
    real_database(path)
    path.write_bytes(path.read_bytes()[:60])


BREAKERS: dict[str, Callable[[Path], None]] = {
    "garbage": garbage,
    "text_file": text_file,
    "foreign_sqlite": foreign,
    "newer_schema": newer_schema,
    "damaged_pages": damaged_pages,
    "truncated_header": truncated_header,
}
MESSAGES = {
    "foreign_sqlite": "not Freight's",
    "newer_schema": "newer Freight",
}


@pytest.mark.parametrize("kind", list(BREAKERS))
def test_freight_get_refuses_a_bad_database_and_leaves_it_untouched(
    tmp_path: Path, fault_server: FaultServer, kind: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "freight.db"
    BREAKERS[kind](db)
    for leftover in ("-wal", "-shm"):  # only the file itself: a clean starting point
        Path(str(db) + leftover).unlink(missing_ok=True)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    url = fault_server.add("/f.bin", make_data(10_000), etag="v1")

    done = freight(home, "get", "-q", "-d", str(tmp_path / "dl"), url)

    assert done.returncode == 1, done.stderr
    message = " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert str(db) in message.replace(" ", "") or str(db) in message
    assert MESSAGES.get(kind, "damaged or not a database") in message
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert fault_server.requests_total == 0  # refused before any network traffic
    assert not (tmp_path / "dl").exists() or os.listdir(tmp_path / "dl") == []


def test_a_genuine_database_still_opens(tmp_path: Path) -> None:
    """The checks above do not refuse a healthy database (or an empty new file)."""
    db = tmp_path / "freight.db"
    real_database(db)
    store = Store(db)
    downloads, total = store.list()
    assert total == 40 and len(downloads) == 40
    assert store._query("PRAGMA application_id")[0][0] == APPLICATION_ID
    store.close()
    empty = tmp_path / "empty.db"
    empty.touch()
    Store(empty).close()
    assert empty.stat().st_size > 0


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)", "127.0.0.1/x"]
)
def test_freight_get_accepts_only_http_urls(tmp_path: Path, url: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = freight(home, "get", "-q", "-d", str(tmp_path / "dl"), url)
    assert done.returncode == 2
    assert "not an http(s) URL" in done.stderr
    assert not (home / "freight.db").exists()  # refused before anything was created


@pytest.mark.parametrize("kind", list(BREAKERS))
def test_freight_daemon_refuses_a_bad_database_and_leaves_it_untouched(
    tmp_path: Path, kind: str
) -> None:
    from secdaemon import env_for

    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    db = home / "freight.db"
    BREAKERS[kind](db)
    for leftover in ("-wal", "-shm"):
        Path(str(db) + leftover).unlink(missing_ok=True)
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    done = subprocess.run([FREIGHT, "daemon", "--no-tray", "--port", "0"], env=env_for(home),
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 1, done.stderr
    message = " ".join((done.stderr + done.stdout).split())
    assert "Traceback" not in message
    assert MESSAGES.get(kind, "damaged or not a database") in message
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not (home / "state" / "daemon.json").exists()  # it never served
