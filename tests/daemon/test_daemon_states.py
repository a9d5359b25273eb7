"""Following many downloads cheaply: ``states`` (one call, one query, for many ids), the
``subscribe`` filter on states, and `freight wait` built on them, against a real daemon, with
its fallback for a daemon that predates both."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from freight import rpc
from freight.client import RemoteCallError
from freight.errors import InputError

URL = "http://127.0.0.1:9/file.bin"  # never fetched: these downloads are added paused

#: A daemon as it was before ``states`` and the ``subscribe`` filter: the same daemon, with
#: the protocol's table as it then was (a client upgraded while the old daemon still runs).
OLD_DAEMON = """
import sys
from freight.daemon import protocol
del protocol.METHODS["states"]
old = protocol.METHODS["subscribe"]
protocol.METHODS["subscribe"] = protocol.Method(
    old.required, {k: v for k, v in old.optional.items() if k != "states"})
from freight.cli.entry import main
sys.argv = ["freight", *sys.argv[1:]]
sys.exit(main())
"""


def test_states_answers_for_many_ids_in_one_call_and_names_the_unknown(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as c:
        ids = c.call("add_many", urls=[f"{URL}?{i}" for i in range(3)], paused=True)["ids"]
        c.call("cancel", id=ids[1])
        got = c.call("states", ids=[ids[0], 999_999, ids[1], ids[2], ids[0]])
        assert got == {
            "states": {str(ids[0]): {"state": "paused", "error_kind": None},
                       str(ids[1]): {"state": "removed", "error_kind": None},
                       str(ids[2]): {"state": "paused", "error_kind": None}},
            "unknown": [999_999],
        }
        for i in ids:  # what `get` says, in a few bytes
            row = c.call("get", id=i)
            assert got["states"][str(i)] == {"state": row["state"], "error_kind": row["error_kind"]}


def test_states_refuses_more_ids_than_its_cap_and_an_empty_list(daemon: DaemonProcess) -> None:
    cap = rpc.STATES_MAX_IDS
    with daemon.client() as c:
        assert c.call("states", ids=list(range(1, cap + 1)))["unknown"][-1] == cap
        too_many, empty, bad = c.call_many(
            "states", [{"ids": list(range(1, cap + 2))}, {"ids": []}, {"ids": ["x"]}])
        for refused in (too_many, empty, bad):
            assert isinstance(refused, InputError), refused
            assert refused.data["code"] == rpc.INVALID_PARAMS and refused.data["param"] == "ids"
        assert str(cap) in str(too_many)


def test_a_subscription_for_some_states_hears_only_those(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    url = fault_server.add("/s.bin", data=b"s" * 5000)
    with daemon.client() as slim, daemon.client() as full:
        assert slim.call("subscribe", events=["download.state"], rows=False,
                         states=["completed", "failed"]) == {"subscribed": ["download.state"]}
        full.call("subscribe", events=["download.state"], rows=False)
        download_id = full.call("add", url=url)["id"]
        heard = []
        for _event, params in full.notifications(timeout=10):
            heard.append(params["state"])
            if params["state"] == "completed":
                break
        assert "active" in heard and heard[-1] == "completed"
        # A marker after the download's end: whatever the slim client heard before it, it
        # heard all of it.
        marker = full.call("add", url=URL, paused=True)["id"]
        full.call("cancel", id=marker)
        wait_for(lambda: full.call("get", id=marker)["state"] == "removed")
        slim.call("subscribe", events=["download.state"], rows=False, states=["removed"])
        other = full.call("add", url=URL, paused=True)["id"]
        full.call("cancel", id=other)
        got = [(p["id"], p["state"]) for _e, p in _until_id(slim, other)]
        assert got == [(download_id, "completed"), (other, "removed")]


def _until_id(client, download_id: int):
    for event, params in client.notifications(timeout=10):
        yield event, params
        if params.get("id") == download_id:
            return
    raise AssertionError(f"no event for {download_id}")


def test_subscribe_refuses_unknown_states_and_a_filter_for_events_it_does_not_hear(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as c:
        unknown, no_events, empty = c.call_many("subscribe", [
            {"states": ["completed", "done"]},
            {"events": ["download.removed"], "states": ["completed"]},
            {"states": []},
        ])
        for refused in (unknown, no_events, empty):
            assert isinstance(refused, InputError), refused
            assert refused.data["param"] == "states"
        assert "completed" in str(unknown) and "download.state" in str(no_events)
        assert c.call("subscribe", states=["paused"])["subscribed"] == list(rpc.EVENTS)


# -- freight wait ----------------------------------------------------------------------------


def test_wait_exit_codes(daemon: DaemonProcess, fault_server: FaultServer) -> None:
    ok = fault_server.add("/ok.bin", data=b"k" * 3000)
    missing = fault_server.url("/missing.bin")  # 404: failed
    # The link expires while its first answer streams: once it worked, a 403 asks for a
    # fresh link (as test_daemon_transfers' refresh test).
    expired = fault_server.add("/x.bin?sig=1", data=make_data(2 * 1024 * 1024), etag="x1",
                               rate=512 * 1024, expires_at=time.time() + 0.5,
                               drop_after={"times": 1, "bytes": 512 * 1024})
    with daemon.client() as c:
        done, failed = c.call("add_many", urls=[ok, missing])["ids"]
        stale = c.call("add", url=expired, connections=1)["id"]
        wait_for(lambda: c.call("get", id=stale)["state"] == "needs_refresh", timeout=30)
    r = daemon.cli("wait", str(done), "--timeout", "30")
    assert (r.returncode, r.stdout) == (0, f"{done}\tcompleted\n"), r.stderr
    r = daemon.cli("wait", str(done), str(failed), str(stale), "--timeout", "30")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [f"{done}\tcompleted", f"{failed}\tfailed",
                                     f"{stale}\tneeds_refresh"]
    r = daemon.cli("wait", str(stale), str(done), "--timeout", "30")
    assert r.returncode == 3, r.stderr
    r = daemon.cli("wait", str(done), "999999", "--timeout", "30")
    assert r.returncode == 2 and "999999" in r.stderr and r.stdout == ""


def test_wait_follows_many_downloads_to_their_end(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    urls = [fault_server.add(f"/m{i}.bin", data=b"m" * 2000, latency=0.05) for i in range(30)]
    with daemon.client() as c:
        ids = c.call("add_many", urls=urls)["ids"]
    r = daemon.cli("wait", *map(str, ids), "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{i}\tcompleted" for i in ids]


@pytest.fixture
def old_daemon(tmp_path: Path):
    proc = DaemonProcess(tmp_path / "home", launcher=("-c", OLD_DAEMON)).start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def test_wait_falls_back_for_a_daemon_without_states(
    old_daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    with old_daemon.client() as c:
        missing = c.call_many("states", [{"ids": [1]}])[0]
        assert isinstance(missing, RemoteCallError) and missing.code == rpc.METHOD_NOT_FOUND
        refused = c.call_many("subscribe", [{"states": ["completed"]}])[0]
        assert isinstance(refused, InputError)
        urls = [fault_server.add(f"/o{i}.bin", data=b"o" * 2000, latency=0.05)
                for i in range(5)]
        ids = c.call("add_many", urls=urls)["ids"]
        paused = c.call("add", url=URL, paused=True)["id"]
        c.call("cancel", id=paused)
    r = old_daemon.cli("wait", *map(str, ids), "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{i}\tcompleted" for i in ids]
    r = old_daemon.cli("wait", str(ids[0]), str(paused), "--timeout", "30")
    assert r.returncode == 1 and r.stdout.splitlines()[1] == f"{paused}\tremoved", r.stderr
    r = old_daemon.cli("wait", str(ids[0]), "999999", "--timeout", "30")
    assert r.returncode == 2 and "999999" in r.stderr


def test_many_messages_of_one_turn_arrive_whole_and_in_order(daemon: DaemonProcess) -> None:
    """add_many publishes one download.added per URL in one loop turn: the daemon may write
    them out together, but each stays its own WebSocket message, in order, before the reply."""
    with daemon.client() as c:
        c.call("subscribe", events=["download.added"])
        ids = c.call("add_many", urls=[f"{URL}?{i}" for i in range(300)], paused=True)["ids"]
        added = [p["download"]["id"] for e, p in c.notifications(timeout=0.5)]
    assert added == ids


def test_the_client_asks_for_more_ids_than_the_cap_in_chunks(daemon: DaemonProcess) -> None:
    with daemon.client() as c:
        ids = c.call("add_many", urls=[f"{URL}?{i}" for i in range(rpc.STATES_MAX_IDS)],
                     paused=True)["ids"]
        ids.append(c.call("add", url=URL, paused=True)["id"])
        c.call("cancel", id=ids[-1])
        got = c.states(ids)
    assert len(got) == len(ids) == rpc.STATES_MAX_IDS + 1
    assert got[ids[0]] == ("paused", None) and got[ids[-1]] == ("removed", None)
