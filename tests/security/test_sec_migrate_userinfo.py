"""URL userinfo in rows an older Freight wrote: moved into the sealed headers on open.

Before userinfo left URLs where they enter Freight (freight.urls.split_credentials), a
``http://user:password@host/`` download was stored as given: its password in clear in ``url``
(and in ``final_url``, ``referrer``). Opening such a database migrates it (schema 3), in one
transaction: the URL is bare, the credentials are the sealed ``Authorization: Basic``, and
the download resumes with them.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from faultserver import FaultServer, make_data
from freight.config import EngineSettings
from freight.engine.transfer import Transfer
from freight.errors import StoreError
from freight.models import DownloadState
from freight.secrets import Sealer
from freight.store import APPLICATION_ID, MIGRATIONS, Store
from secdaemon import database_dump

KEY = bytes(range(32))
PASSWORD = "pa@ss:wörd-5e1f"
#: As an older version stored it: percent-encoded in the URL (RFC 3986 §3.2.1).
USERINFO = "alice:pa%40ss%3Aw%C3%B6rd-5e1f"
BASIC = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
DATA = make_data(300_000, seed=9)
HALF = 100_000


def old_database(path: Path, rows: list[dict[str, object]], version: int = 2) -> None:
    """A database as Freight at schema ``version`` wrote it: its own tables, raw inserts."""
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {version}")
    now = time.time()
    for row in rows:
        segments = row.pop("segments", [])
        row = {"state": "paused", "created_at": now, "updated_at": now, "headers": "{}", **row}
        cur = db.execute(
            f"INSERT INTO downloads ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        for start, end, pos in segments:  # type: ignore[attr-defined]
            db.execute("INSERT INTO segments VALUES (?, ?, ?, ?)", (cur.lastrowid, start, end, pos))
    db.close()


def test_userinfo_of_an_older_row_becomes_the_sealed_basic_header_and_it_resumes(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    url = fault_server.add("/f.bin", DATA, etag="v1", require_header=("Authorization", BASIC))
    with_userinfo = url.replace("http://", f"http://{USERINFO}@")
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "f.bin.part").write_bytes(DATA[:HALF] + bytes(len(DATA) - HALF))
    database = tmp_path / "freight.db"
    old_database(database, [
        # A download half done, its password in all three URLs.
        {"url": with_userinfo, "final_url": with_userinfo + "?final",
         "referrer": f"https://bob:REFERRER-SECRET@127.0.0.1:{fault_server.port}/page",
         "dir": str(folder), "name": "f.bin", "size": len(DATA), "done": HALF, "resumable": 1,
         "etag": '"v1"', "segments": [(0, len(DATA), HALF)]},
        # Without userinfo: left alone.
        {"url": fault_server.url("/other"), "dir": str(folder), "state": "queued"},
    ])
    before_other = sqlite3.connect(database).execute(
        "SELECT * FROM downloads WHERE id = 2").fetchone()

    store = Store(database, sealer=Sealer(KEY))
    migrated = store.get(1)
    assert migrated.url == url
    assert migrated.final_url == url + "?final"
    assert migrated.referrer == f"https://127.0.0.1:{fault_server.port}/page"
    assert store.secret_headers(1) == {"Authorization": BASIC}
    assert store.load_segments(1)[0].pos == HALF  # progress kept
    store.close()
    raw = database.read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("freight.db-*"))
    for secret in ("pa%40ss", "REFERRER-SECRET", "5e1f", PASSWORD.encode().decode()):
        assert secret.encode() not in raw
    after_other = sqlite3.connect(database).execute(
        "SELECT * FROM downloads WHERE id = 2").fetchone()
    assert after_other == before_other

    # Opening again changes nothing.
    dump = database_dump(database)
    Store(database, sealer=Sealer(KEY)).close()
    assert database_dump(database) == dump

    # The download resumes from its half, with the credentials, to the server.
    store = Store(database, sealer=Sealer(KEY))
    store.set_state(1, DownloadState.ACTIVE)
    done = Transfer(store, 1, EngineSettings(max_tries=2, adaptive=False, connections=1)).run()
    store.close()
    assert done.state == DownloadState.COMPLETED, done.error
    assert (folder / "f.bin").read_bytes() == DATA
    seen = fault_server.stats("/f.bin").log
    assert seen and all(r.headers.get("authorization") == BASIC for r in seen)
    assert seen[0].range == (HALF, None) or seen[0].range == (HALF, len(DATA) - 1)


def test_an_explicit_authorization_wins_over_the_userinfo(tmp_path: Path) -> None:
    database = tmp_path / "freight.db"
    sealer = Sealer(KEY)
    old_database(database, [{"url": f"http://{USERINFO}@127.0.0.1:9/f", "dir": str(tmp_path),
                             "sealed_headers": sealer.seal(json.dumps(
                                 {"Authorization": "Bearer mine", "Cookie": "a=b"}).encode())}])
    store = Store(database, sealer=sealer)
    assert store.get(1).url == "http://127.0.0.1:9/f"
    assert store.secret_headers(1) == {"Authorization": "Bearer mine", "Cookie": "a=b"}
    store.close()


def test_without_a_key_the_older_database_is_left_untouched(tmp_path: Path) -> None:
    database = tmp_path / "freight.db"
    old_database(database, [{"url": f"http://{USERINFO}@127.0.0.1:9/f", "dir": str(tmp_path)}])
    dump = database_dump(database)
    with pytest.raises(StoreError, match="no key"):
        Store(database)
    assert database_dump(database) == dump  # one transaction: nothing half migrated
    assert sqlite3.connect(database).execute("PRAGMA user_version").fetchone()[0] == 2
    os.chmod(database, 0o600)
    store = Store(database, sealer=Sealer(KEY))  # with the key, it migrates
    assert store.get(1).url == "http://127.0.0.1:9/f"
    store.close()
