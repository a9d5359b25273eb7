"""The tray's bridge does not wake an idle daemon: with nothing running its snapshot is
taken again only after an event (or a tray action), never on a timer."""

from __future__ import annotations

import asyncio
import threading
import time

from freight import config


def test_tray_bridge_sleeps_while_nothing_runs_and_wakes_on_events(tmp_path) -> None:
    from freight.daemon import protocol as api
    from freight.daemon.events import Hub, Session
    from freight.daemon.handler import ApiHandler
    from freight.daemon.scheduler import Scheduler
    from freight.daemon.tray_bridge import TrayBridge
    from freight.store import Store

    class Counting(TrayBridge):
        REFRESH = 0.01
        taken = 0

        def refresh(self) -> None:
            self.taken += 1
            super().refresh()

    paths = config.paths_from_env({"FREIGHT_HOME": str(tmp_path / "freight")}).ensure()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    store = Store(paths.database)

    async def build() -> tuple[ApiHandler, Counting]:
        hub = Hub()
        handler = ApiHandler(paths, store, Scheduler(store, hub), hub)
        bridge = Counting(handler, asyncio.get_running_loop())
        bridge.start()
        return handler, bridge

    def until(condition, what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.01)

    try:
        handler, bridge = asyncio.run_coroutine_threadsafe(build(), loop).result(10)
        time.sleep(0.3)  # thirty REFRESH periods
        assert bridge.taken == 1  # the first snapshot only: nothing runs, nothing happened
        params = api.check_params("add", {"url": "http://127.0.0.1:9/f.bin", "paused": True})

        async def add() -> None:
            handler.add(Session("test"), **params)

        asyncio.run_coroutine_threadsafe(add(), loop).result(10)
        until(lambda: bridge.snapshot().paused == 1, "the snapshot to show the new download")
        settled = bridge.taken
        time.sleep(0.3)
        assert bridge.taken == settled  # asleep again
        loop.call_soon_threadsafe(handler.request_stop)
        until(lambda: bridge._task is not None and bridge._task.done(), "the bridge to end")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()
