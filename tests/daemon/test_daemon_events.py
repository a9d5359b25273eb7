"""The per-client outbox: progress coalesced, everything else kept or the client closed."""

from __future__ import annotations

import asyncio

from freight.daemon.events import Hub, Outbox, Session


def drain(box: Outbox) -> list[str]:
    out = []
    while (item := box.get_nowait()) is not None:
        out.append(item)
    return out


def test_progress_is_coalesced_in_place_and_state_events_kept() -> None:
    async def main() -> None:
        box = Outbox(limit=100)
        box.put("state-1")
        box.put_progress("p1")
        box.put_progress("p2")
        box.put("state-2")
        box.put_progress("p3")  # the unsent p2 slot takes it
        assert drain(box) == ["state-1", "p3", "state-2"]
        assert box.dropped == 2
        box.put_progress("p4")
        assert await box.get() == "p4"

    asyncio.run(main())


def test_a_stuck_client_overflows_instead_of_losing_a_state_event() -> None:
    async def main() -> None:
        box = Outbox(limit=3)
        for i in range(3):
            box.put(f"s{i}")
        assert not box.overflowed
        box.put("s3")
        assert box.overflowed and box.closed
        assert await box.get() is None  # the server closes this client (1008)

    asyncio.run(main())


def test_hub_sends_only_subscribed_events() -> None:
    async def main() -> None:
        hub = Hub(interval=0.01)
        quiet, loud, some = Session(), Session(), Session()
        for s in (quiet, loud, some):
            hub.attach(s)
        loud.subscribe(None)
        assert some.subscribe(["download.removed"]) == ["download.removed"]
        hub.publish("download.removed", {"id": 1})
        hub.publish("download.added", {"download": {"id": 2}})
        assert drain(quiet.outbox) == []
        assert len(drain(loud.outbox)) == 2
        assert drain(some.outbox) == ['{"jsonrpc":"2.0","method":"download.removed",'
                                      '"params":{"id":1}}']
        rows = [{"id": 1, "done": 5}]
        hub.start_progress(lambda: rows)
        await asyncio.sleep(0.1)
        await hub.stop()
        got = drain(loud.outbox)
        assert 1 <= len(got) <= 2  # coalesced while unread: never a backlog
        assert '"download.progress"' in got[0]

    asyncio.run(main())


async def _until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_progress_task_sleeps_while_nothing_runs_or_nobody_listens() -> None:
    """An idle daemon must not wake: with nothing running the hub samples once and then
    waits for an event (a download starts through a state event) or a subscription."""

    async def main() -> None:
        hub = Hub(interval=0.01)
        client = Session()
        hub.attach(client)
        running: list[dict] = []
        looks: list[int] = []

        def source() -> list[dict]:
            looks.append(len(running))
            return list(running)

        hub.start_progress(source)
        await asyncio.sleep(0.3)  # thirty intervals
        assert looks == []  # nobody listens for progress: never sampled
        client.subscribe(None)
        await _until(lambda: len(looks) == 1)
        await asyncio.sleep(0.3)
        assert looks == [0]  # looked once, nothing runs: asleep
        running.append({"id": 1, "done": 5})
        hub.publish("download.state", {"id": 1, "state": "active"})
        await _until(lambda: len(looks) >= 3)  # sampled again and again while it runs
        assert any('"download.progress"' in m for m in drain(client.outbox))
        running.clear()
        hub.publish("download.state", {"id": 1, "state": "completed"})
        await _until(lambda: looks[-1] == 0)
        await asyncio.sleep(0.1)  # an event during the last interval is looked at once more
        settled = len(looks)
        await asyncio.sleep(0.3)
        assert len(looks) == settled  # asleep again
        await hub.stop()

    asyncio.run(main())


def test_a_client_that_follows_states_only_gets_them_without_the_row(daemon, fault_server) -> None:
    # `freight wait` subscribes with rows=False: 1,000 state events for 500 small files are
    # then a few dozen bytes each, not each download's whole row; other clients still get it.
    url = fault_server.add("/w.bin", data=b"w" * 5000)
    with daemon.client() as slim, daemon.client() as full:
        assert slim.call("subscribe", events=["download.state"], rows=False) == {
            "subscribed": ["download.state"]}
        full.call("subscribe", events=["download.state"])
        download_id = full.call("add", url=url)["id"]
        for client, with_row in ((slim, False), (full, True)):
            states = []
            for event, params in client.notifications(timeout=10):
                assert event == "download.state" and params["id"] == download_id
                assert ("download" in params) is with_row
                states.append(params["state"])
                if params["state"] == "completed":
                    break
            assert states[-1] == "completed"
        bad = slim.call_many("subscribe", [{"events": ["download.state"], "rows": "no"}])[0]
        assert isinstance(bad, Exception) and "rows" in str(bad)


def test_a_session_filtered_on_states_hears_only_those_and_wanted_says_so() -> None:
    async def main() -> None:
        hub = Hub()
        slim, idle = Session(), Session()
        hub.attach(slim)
        hub.attach(idle)
        idle.subscribe(["download.removed"])
        assert not hub.wanted("download.state")
        slim.subscribe(["download.state"], rows=False, states=["completed", "failed"])
        assert hub.wanted("download.state")  # some state would be heard
        assert hub.wanted("download.state", state="completed")
        assert not hub.wanted("download.state", state="active")  # nobody hears this one
        assert not hub.wanted("download.state", rows=True)
        for state in ("queued", "active", "completed"):
            hub.publish("download.state", {"id": 1, "state": state, "error": None,
                                           "error_kind": None, "download": {"id": 1}})
        assert drain(slim.outbox) == [
            '{"jsonrpc":"2.0","method":"download.state","params":{"id":1,"state":"completed",'
            '"error":null,"error_kind":null}}']
        full = Session()
        hub.attach(full)
        full.subscribe(None)
        assert hub.wanted("download.state", state="active", rows=True)
        slim.subscribe(["download.state"])  # a new subscription replaces the filter
        assert slim.states is None

    asyncio.run(main())


def test_take_all_drains_what_is_ready_in_order_with_progress_coalesced() -> None:
    async def main() -> None:
        box = Outbox(limit=100)
        box.put("s1")
        box.put_progress("p1")
        box.put("s2")
        box.put_progress("p2")  # replaces p1 in its place
        assert await box.get_all() == ["s1", "p2", "s2"]
        box.put_progress("p3")  # a new slot once the old one went out
        box.put("s3")
        assert await box.get_all() == ["p3", "s3"]
        assert len(box) == 0
        box.put("s4")
        box.close()
        assert await box.get_all() == ["s4"]  # what was queued before the close still goes
        assert await box.get_all() is None

    asyncio.run(main())


def test_wanted_follows_every_change_of_who_listens() -> None:
    # The hub may remember its answers: each of these changes must still show at once.
    hub = Hub()
    first, second = Session(), Session()
    assert not hub.wanted("download.added")
    hub.attach(first)
    assert not hub.wanted("download.added")
    first.subscribe(["download.added"])
    assert hub.wanted("download.added", rows=True)
    first.subscribe(["download.added"], rows=False)
    assert not hub.wanted("download.state")
    hub.attach(second)
    second.subscribe(["download.state"], states=["completed"])
    assert hub.wanted("download.state", state="completed", rows=True)
    assert not hub.wanted("download.state", state="active")
    second.subscribe(["download.state"])
    assert hub.wanted("download.state", state="active")
    hub.detach(second)
    assert not hub.wanted("download.state", state="active")
    hub.detach(first)
    assert not hub.wanted("download.added")
    hub.listen(lambda event, params: None)
    assert hub.wanted("download.added") and not hub.wanted("download.progress")


def test_a_client_that_follows_progress_only_hears_a_download_that_starts_later(
    daemon, fault_server
) -> None:
    # Nobody hears download.state here, but a move to active is what wakes the sampler.
    url = fault_server.add("/p.bin", data=b"p" * (256 * 1024), rate=64 * 1024)
    with daemon.client() as c:
        c.call("subscribe", events=["download.progress"])
        download_id = c.call("add", url=url, paused=True)["id"]
        list(c.notifications(timeout=0.6))  # the sampler looked, saw nothing run: asleep
        c.call("resume", id=download_id)
        for event, params in c.notifications(timeout=10):
            assert event == "download.progress"
            if any(row["id"] == download_id for row in params["downloads"]):
                break
        else:
            raise AssertionError("no progress for the download")
        c.call("cancel", id=download_id)
