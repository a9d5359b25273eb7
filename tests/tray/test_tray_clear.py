"""The tray's "Clear completed": its menu entry, and its action through the real bridge,
handler and store (in-process, as the tray runs inside the daemon)."""

from __future__ import annotations

import asyncio
import threading
import time

from freight import config
from freight.tray.icon import Tray
from freight.tray.model import Action, TraySnapshot, find_entry, menu_model


def test_the_menu_offers_clear_completed_with_its_count_only_when_there_are_some() -> None:
    some = find_entry(menu_model(TraySnapshot(completed=3)), "Clear completed (3)")
    assert some.action == Action("clear_completed") and some.enabled
    none = find_entry(menu_model(TraySnapshot()), "Clear completed")
    assert none.action == Action("clear_completed") and not none.enabled


def test_clear_completed_in_the_tray_forgets_completed_downloads_only(tmp_path) -> None:
    from freight.daemon import protocol as api
    from freight.daemon.events import Hub, Session
    from freight.daemon.handler import ApiHandler
    from freight.daemon.scheduler import Scheduler
    from freight.daemon.tray_bridge import TrayBridge
    from freight.models import DownloadState as S
    from freight.store import Store

    paths = config.paths_from_env({"FREIGHT_HOME": str(tmp_path / "freight")}).ensure()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    store = Store(paths.database)
    finished = tmp_path / "done.bin"
    finished.write_bytes(b"kept")

    async def build() -> tuple[ApiHandler, TrayBridge, list[int]]:
        hub = Hub()
        handler = ApiHandler(paths, store, Scheduler(store, hub), hub)
        ids = []
        for i in range(3):
            params = api.check_params(
                "add", {"url": f"http://127.0.0.1:9/f{i}.bin", "paused": True,
                        "dir": str(tmp_path)})
            ids.append(handler.add(Session("test"), **params)["id"])
        for download_id in ids[:2]:  # two finished, as a transfer records them
            store.set_state(download_id, S.ACTIVE)
            store.complete(download_id, "done.bin", 4)
        bridge = TrayBridge(handler, asyncio.get_running_loop())
        bridge.start()
        return handler, bridge, ids

    def until(condition, what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.01)

    try:
        handler, bridge, ids = asyncio.run_coroutine_threadsafe(build(), loop).result(10)
        assert bridge.snapshot().completed == 2
        entry = find_entry(menu_model(bridge.snapshot()), "Clear completed (2)")
        Tray(bridge).dispatch(entry.action)  # on this thread, as the tray's own
        until(lambda: bridge.snapshot().completed == 0, "the completed downloads to go")
        rows, _ = store.list()
        assert [(d.id, d.state) for d in rows] == [(ids[2], S.PAUSED)]
        assert finished.read_bytes() == b"kept"  # records only: the file stays
        loop.call_soon_threadsafe(handler.request_stop)
        until(lambda: bridge._task is not None and bridge._task.done(), "the bridge to end")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()
