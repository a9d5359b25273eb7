"""The scheduler's one state owner: every move, its own and its transfers' (from their
threads), goes through its StateKeeper and reaches the clients as one event on the loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from freight.daemon.events import Hub
from freight.daemon.scheduler import Scheduler
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Store

S = DownloadState


@dataclass
class Progress:
    done: int = 0
    size: int | None = None
    speed: float = 0.0
    connections: int = 1
    eta: float | None = None


class FakeTransfer:
    """Like the engine's Transfer: it reports through the keeper it is given, from its thread.
    Its run learns its name and size, then waits to finish or to be stopped."""

    def __init__(self, store: Store, download_id: int, settings: Any, *, keeper: StateKeeper,
                 **kwargs: Any) -> None:
        self.id = download_id
        self.keeper = keeper
        self.finish = threading.Event()
        self.reason: str | None = None
        self.slow_stop = False  # a stop only takes effect once the test sets ``finish``

    def run(self) -> Download:
        self.keeper.update(self.id, name="file.bin", size=3)
        self.finish.wait(10)
        if self.reason == "shutdown":
            return self.keeper.store.get(self.id)  # stays active, for the next start
        if self.reason == "pause":
            return self.keeper.move(self.id, S.PAUSED)
        return self.keeper.complete(self.id, "file.bin", 3)

    def stop(self, reason: Any) -> None:
        self.reason = reason
        if not self.slow_stop:
            self.finish.set()

    def progress(self) -> Progress:
        return Progress()

    def set_limit(self, bytes_per_second: int | None) -> None:
        pass


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()


def run_scheduler(store: Store, body: Any) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    events: list[tuple[str, dict[str, Any]]] = []
    transfers: dict[int, FakeTransfer] = {}

    def factory(*args: Any, **kwargs: Any) -> FakeTransfer:
        transfers[args[1]] = transfer = FakeTransfer(*args, **kwargs)
        return transfer

    async def main() -> Any:
        hub = Hub()
        loop_thread = threading.current_thread()
        hub.listen(lambda e, p: events.append((e, p, threading.current_thread() is loop_thread)))
        scheduler = Scheduler(store, hub, transfer_factory=factory)
        await scheduler.start()
        try:
            return await body(scheduler, transfers)
        finally:
            await scheduler.shutdown(5)

    outcome = asyncio.run(main())
    assert all(on_loop for _, _, on_loop in events), "an event was published off the loop"
    return [(e, p) for e, p, _ in events], outcome


async def wait_for(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_moves_are_state_events_other_changes_are_changed_events(store: Store) -> None:
    download = store.add("http://127.0.0.1/file.bin", "/tmp", state=S.QUEUED)

    async def body(scheduler: Scheduler, transfers: dict[int, FakeTransfer]) -> None:
        await wait_for(lambda: download.id in transfers)
        transfers[download.id].finish.set()
        await wait_for(lambda: not scheduler.is_running(download.id))

    events, _ = run_scheduler(store, body)
    assert [(e, p.get("state") or p["download"]["state"]) for e, p in events] == [
        ("download.state", "active"),  # the scheduler's own move, on the loop
        ("download.changed", "active"),  # the transfer learned name and size, on its thread
        ("download.state", "completed"),  # the transfer's move, on its thread
    ]
    assert events[1][1]["download"]["name"] == "file.bin"
    assert store.get(download.id).state == S.COMPLETED


def test_a_resume_while_a_pause_is_on_its_way_queues_it_again(store: Store) -> None:
    from freight.daemon.actions import Actions

    download = store.add("http://127.0.0.1/file.bin", "/tmp", state=S.QUEUED)

    async def body(scheduler: Scheduler, transfers: dict[int, FakeTransfer]) -> list[int]:
        actions = Actions(scheduler)
        await wait_for(lambda: download.id in transfers)
        first = transfers.pop(download.id)
        first.slow_stop = True
        pausing = asyncio.create_task(actions.pause([download.id]))
        await wait_for(lambda: first.reason == "pause")
        resumed = actions.resume([download.id])
        first.finish.set()  # the transfer ends paused, the scheduler queues it again
        assert await pausing == [download.id]
        await wait_for(lambda: download.id in transfers)  # and it runs again
        return resumed

    events, resumed = run_scheduler(store, body)
    assert resumed == [download.id]
    states = [p["state"] for e, p in events if e == "download.state"]
    assert states == ["active", "paused", "queued", "active"]


def test_slots_freed_one_by_one_are_refilled_by_one_fill(store: Store, monkeypatch) -> None:
    """A small file's slot frees when its body is in memory, one file at a time, each in a
    turn of the loop of its own: the refill gathers those freed within REFILL_GATHER and
    starts them in one fill (one transaction), not one fill each."""
    from freight.daemon import scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "REFILL_GATHER", 0.3)  # far longer than 4 turns
    # No file is small here: the fake transfers learn a size of 3 bytes, which would move
    # them to the small lane and free their slots by themselves.
    store.set_settings({"max_active": 4, "small_size": 0})
    for i in range(12):
        store.add(f"http://example.test/{i}", "/tmp")

    async def body(scheduler: Scheduler, transfers: dict[int, FakeTransfer]) -> list[int]:
        await wait_for(lambda: len(transfers) == 4)
        fills: list[int] = []
        real = scheduler.keeper.start_queued

        def counted(choose: Any) -> list[Download]:
            started = real(choose)
            fills.append(len(started))
            return started

        scheduler.keeper.start_queued = counted  # type: ignore[method-assign]
        first = list(transfers)
        for download_id in first:
            scheduler._connection_free(download_id)  # its body is in memory
            await asyncio.sleep(0)  # the next one frees in a later turn
        await wait_for(lambda: len(transfers) == 8)
        assert fills == [4]
        # Their ends free no slot (theirs went at their bodies): no fill, no transaction.
        for download_id in first:
            transfers[download_id].finish.set()
        await wait_for(lambda: all(store.get(i).state is S.COMPLETED for i in first))
        await asyncio.sleep(0.05)
        seen = list(fills)
        for transfer in transfers.values():
            transfer.finish.set()
        return seen

    _, fills = run_scheduler(store, body)
    assert fills == [4]
