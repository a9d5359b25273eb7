"""Duplicate downloads through the real daemon: ``add``/``add_many`` answer a download that
is already there (completed, its file present) or still to come (queued, active, paused) with
that download instead of a second copy; ``again`` adds anyway. `freight add` says so and
exits 0 (docs/PROTOCOL.md "Duplicates")."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from freight.store import Store

NEVER = "http://127.0.0.1:9/never.bin"  # never fetched: added paused


def rows(c) -> list[dict]:
    return c.call("list", limit=10_000)["downloads"]


def completed(daemon: DaemonProcess, fault_server: FaultServer, path: str = "/one.bin") -> dict:
    url = fault_server.add(path, data=make_data(64 * 1024))
    with daemon.client() as c:
        download_id = c.call("add", url=url, dir=str(daemon.home / "dl"))["id"]
        wait_for(lambda: c.call("get", id=download_id)["state"] == "completed")
        return c.call("get", id=download_id)


def test_adding_a_completed_url_again_names_the_file_and_adds_nothing(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    done = completed(daemon, fault_server)
    with daemon.client() as c:
        again = c.call("add", url=done["url"], dir=str(daemon.home / "other"))
        assert again == {"id": done["id"], "duplicate": {
            "id": done["id"], "state": "completed", "name": "one.bin", "path": done["path"]}}
        assert len(rows(c)) == 1
        forced = c.call("add", url=done["url"], again=True, paused=True)
        assert "duplicate" not in forced and forced["id"] != done["id"]
        assert len(rows(c)) == 2


def test_a_completed_download_whose_file_is_gone_is_downloaded_again(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    done = completed(daemon, fault_server)
    os.remove(done["path"])
    with daemon.client() as c:
        fresh = c.call("add", url=done["url"], paused=True)
        assert "duplicate" not in fresh and fresh["id"] != done["id"]


def test_a_queued_or_paused_download_is_not_added_twice_nor_a_signed_link_to_it(
    daemon: DaemonProcess,
) -> None:
    signed = NEVER + "?X-Amz-Signature=one&X-Amz-Expires=60"
    with daemon.client() as c:
        first = c.call("add", url=signed, paused=True)["id"]
        again = c.call("add", url=NEVER + "?X-Amz-Signature=two&X-Amz-Expires=60")
        assert again["id"] == first and again["duplicate"]["state"] == "paused"
        other = c.call("add", url=NEVER + "?id=2", paused=True)  # another file
        assert "duplicate" not in other
        by_size = c.call("add", url=NEVER + "?opaque=1", paused=True, size_hint=5000)
        assert "duplicate" not in by_size  # the first one's size is not known
        assert len(rows(c)) == 3


def test_add_many_adds_the_new_ones_and_names_the_duplicates_in_place(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as c:
        first = c.call("add", url=NEVER + "?n=1", paused=True)["id"]
        got = c.call("add_many", urls=[NEVER + "?n=0", NEVER + "?n=1", NEVER + "?n=2"],
                     paused=True)
        ids = got["ids"]
        assert ids[1] == first and ids[0] > first and ids[2] > ids[0]
        assert got["duplicates"] == [{"index": 1, "id": first, "state": "paused",
                                      "name": None, "path": None}]
        assert len(rows(c)) == 3
        # All duplicates: nothing added, every id an existing one.
        assert c.call("add_many", urls=[NEVER + "?n=2", NEVER + "?n=0"])["ids"] == [ids[2], ids[0]]
        forced = c.call("add_many", urls=[NEVER + "?n=2"], again=True, paused=True)
        assert "duplicates" not in forced and forced["ids"][0] > ids[2]
        assert len(rows(c)) == 4


def test_cli_add_says_already_downloaded_or_queued_and_exits_0(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    done = completed(daemon, fault_server)
    r = daemon.cli("add", done["url"])
    assert r.returncode == 0, r.stderr
    assert f"already downloaded: {done['path']}" in r.stdout + r.stderr
    with daemon.client() as c:
        queued = c.call("add", url=NEVER, paused=True)["id"]
    r = daemon.cli("add", NEVER)
    assert r.returncode == 0, r.stderr
    assert f"already queued as {queued}: never.bin" in r.stdout + r.stderr
    r = daemon.cli("add", NEVER, done["url"], "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["ids"] == [queued, done["id"]]
    assert [d["id"] for d in record["duplicates"]] == [queued, done["id"]]
    r = daemon.cli("add", "--again", "--paused", done["url"])
    assert r.returncode == 0, r.stderr
    assert "already" not in r.stdout + r.stderr
    with daemon.client() as c:
        assert len(rows(c)) == 3


def test_the_candidates_are_read_through_an_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db")
    store.add(NEVER + "?a", str(tmp_path))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    found = store.duplicate_candidates([NEVER + "?b"])
    store.close()
    assert [d.url for d in found[NEVER]] == [NEVER + "?a"]
    db = sqlite3.connect(tmp_path / "freight.db")
    select = next(s for s in statements if s.startswith("SELECT"))
    plan = " ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + select))
    db.close()
    assert "USING INDEX downloads_by_address" in plan, plan
