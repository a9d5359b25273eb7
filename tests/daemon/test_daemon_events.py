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
