"""Many downloads in one request: `freight add URL...` and the API's ``add_many``.

One transaction for all of them, all or none: a bad URL anywhere refuses the whole request,
named by its place and never quoted (it may hold a password), and changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from freight.errors import InputError
from freight.models import DownloadState
from freight.store import Store

URL = "http://127.0.0.1:9/f.bin"  # never fetched: the slot is held, or they are paused
BAD = "http://user:s3cret-pw@/no-host.bin"  # no host: refused, and its password never shown


def rows(c) -> list[dict]:
    return c.call("list", limit=10_000)["downloads"]


@pytest.fixture
def held(daemon: DaemonProcess, fault_server: FaultServer):
    """A daemon whose one big slot is held by a stalled download and that has no small lane
    (which would try any download of unknown size at once): everything added waits in the
    queue."""
    url = fault_server.add("/stall.bin", make_data(3 * 1024 * 1024), stall_after={"bytes": 1},
                           stall_seconds=3600)
    with daemon.client() as c:
        c.call("set_settings", settings={"max_active": 1, "max_small": 0})
        first = c.call("add", url=url)["id"]
        wait_for(lambda: c.call("get", id=first)["state"] == "active")
    return daemon, first


def test_cli_add_of_a_thousand_urls_queues_them_all_in_order(held) -> None:
    daemon, first = held
    urls = [f"{URL}?n={i}" for i in range(1000)]
    r = daemon.cli("add", *urls, "--json")
    assert r.returncode == 0, r.stderr
    ids = json.loads(r.stdout)["ids"]
    assert len(ids) == 1000 and ids == sorted(ids) and ids[0] > first
    with daemon.client() as c:
        listed = [d for d in rows(c) if d["id"] != first]
        assert [(d["id"], d["url"], d["state"]) for d in listed] == [
            (i, u, "queued") for i, u in zip(ids, urls, strict=True)
        ]
        positions = [d["position"] for d in listed]
        assert positions == sorted(set(positions))  # each after the one before
        assert c.call("get", id=first)["state"] == "active"  # still the only one running
    r = daemon.cli("add", f"{URL}?a", f"{URL}?b")  # the plain output: id, tab, URL
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[1] for line in r.stdout.splitlines()] == [f"{URL}?a", f"{URL}?b"]


def test_cli_add_with_a_bad_url_at_700_queues_none_and_names_its_place(
    daemon: DaemonProcess,
) -> None:
    urls = [f"{URL}?n={i}" for i in range(1000)]
    urls[699] = BAD
    r = daemon.cli("add", *urls, "--paused")
    assert r.returncode == 2
    assert "URL 700 of 1000" in r.stderr, r.stderr
    assert "s3cret" not in r.stderr + r.stdout and r.stdout == ""
    with daemon.client() as c:
        assert rows(c) == []


def test_add_many_over_the_api(daemon: DaemonProcess) -> None:
    with daemon.client() as c:
        c.call("subscribe", events=["download.added"])
        got = c.call("add_many", urls=[f"{URL}?1", "http://u:pw-1@127.0.0.1:9/x", f"{URL}?3"],
                     paused=True, limit=1024, headers={"X-Kind": "test"})
        ids = got["ids"]
        assert len(ids) == 3 and ids == sorted(ids)
        listed = rows(c)
        assert [d["id"] for d in listed] == ids
        assert [d["url"] for d in listed] == [f"{URL}?1", "http://127.0.0.1:9/x", f"{URL}?3"]
        assert {(d["state"], d["limit"]) for d in listed} == {("paused", 1024)}
        events = [p["download"]["id"] for e, p in c.notifications(timeout=0.5)
                  if e == "download.added"]
        assert events == ids
        before = json.dumps(rows(c))
        urls = [f"{URL}?n={i}" for i in range(1000)]
        urls[699] = BAD
        for params, words in (
            ({"urls": urls}, "item 700 of 1000"),
            ({"urls": [*urls[:3], "\ud800"]}, "(item 4)"),
            ({"urls": []}, "a list of 1 to 10,000 URLs"),
            ({"urls": [URL] * 10_001}, "a list of 1 to 10,000 URLs"),
            ({"urls": URL}, "a list of 1 to 10,000 URLs"),
            ({"urls": [URL, URL], "name": "one.bin"}, "unknown param 'name'"),
            ({"urls": [URL], "connections": 0}, "connections"),
            ({"url": URL}, "unknown param 'url' for add_many"),
        ):
            with pytest.raises(InputError) as caught:
                c.call("add_many", **params)
            assert words in str(caught.value), (params.keys(), str(caught.value))
            assert "s3cret" not in str(caught.value) and "s3cret" not in json.dumps(
                caught.value.data)
        with pytest.raises(InputError) as caught:
            c.call("add_many", urls=urls)
        assert caught.value.data["position"] == 700 and caught.value.data["param"] == "urls"
        assert json.dumps(rows(c)) == before  # nothing changed
        assert c.call("add", url=f"{URL}?single", paused=True)["id"] > ids[-1]  # add works on


def test_store_add_many_is_one_all_or_nothing_batch(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.db")
    try:
        one = store.add(URL, str(tmp_path))
        batch = store.add_many(
            [{"url": f"{URL}?{i}", "dir": str(tmp_path), "state": DownloadState.PAUSED,
              "name": f"n{i}"} for i in range(5)]
        )
        assert [d.url for d in batch] == [f"{URL}?{i}" for i in range(5)]
        assert [d.position for d in batch] == [one.position + 1 + i for i in range(5)]
        assert all(d.state is DownloadState.PAUSED and d.id > one.id for d in batch)
        assert store.add(URL, str(tmp_path)).position == batch[-1].position + 1
        with pytest.raises(InputError):
            store.add_many([{"url": URL, "dir": str(tmp_path)},
                            {"url": URL, "dir": str(tmp_path), "no_such_field": 1}])
        assert store.list()[1] == 7  # the bad batch added none
        assert store.add_many([]) == []
    finally:
        store.close()
