"""The tray's view of the daemon: :class:`TrayBridge` implements
:class:`freight.tray.icon.TrayController` over the API's handler.

The tray (pystray) runs on threads of its own; the daemon's state belongs to its event loop
(docs/ARCHITECTURE.md "The daemon"). So every action here is handed to the loop with
``asyncio.run_coroutine_threadsafe`` and runs there through the very methods the API serves
(:class:`~freight.daemon.handler.ApiHandler`), with a session of the tray's own; nothing here
reaches into the scheduler's or the handler's private state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from freight import config
from freight.daemon import protocol as api
from freight.daemon.actions import open_path
from freight.daemon.events import Session
from freight.daemon.handler import ApiHandler
from freight.errors import FreightError
from freight.tray.model import TraySnapshot, schedule_words

log = logging.getLogger("freight.daemon")

SNAPSHOT_ROWS = 5  # running downloads the tray's menu lists


class TrayBridge:
    """Called from the tray's threads: every method returns at once and does its work on the
    daemon's loop.

    :meth:`snapshot` never waits for the loop (the tray polls it on its own thread, and a
    busy loop must not freeze the icon): it returns the last snapshot, which the loop
    refreshes right after each tray action, at most every :attr:`REFRESH` seconds after the
    daemon's events (a download added, moved, ended; a setting changed), and every
    :attr:`REFRESH` seconds while downloads run (their speed and progress). While nothing
    runs and nothing happens it does not wake at all: counting 10,000 rows twice a second
    is what an idle daemon must not do.
    """

    REFRESH = 0.5  # seconds; the tray redraws at most once a second

    def __init__(self, handler: ApiHandler, loop: asyncio.AbstractEventLoop) -> None:
        self.handler = handler
        self.loop = loop
        self._snap = TraySnapshot()
        self._session = Session("tray")
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # an event since the last snapshot

    # -- on the loop ------------------------------------------------------------------------

    def start(self) -> None:
        """Take the first snapshot and keep it fresh until the daemon stops (on the loop)."""
        self.handler.hub.listen(lambda event, params: self._changed.set())  # on the loop
        self.refresh()
        self._task = self.loop.create_task(self._refresh_until_stopped())

    async def _refresh_until_stopped(self) -> None:
        stop = self.handler.stop_requested
        while not stop.is_set():
            if not self._snap.active and not self._changed.is_set():
                await _first(stop.wait(), self._changed.wait())  # idle: until something happens
            with contextlib.suppress(TimeoutError):  # at most one snapshot per REFRESH
                await asyncio.wait_for(stop.wait(), self.REFRESH)
            if not stop.is_set():
                self._changed.clear()
                self.refresh()

    def refresh(self) -> None:
        """Read the daemon's state into a new snapshot (on the loop; never raises)."""
        try:
            self._snap = self._take()  # one reference assignment: atomic for the tray's thread
        except Exception:
            log.debug("tray snapshot failed; the tray keeps the last one", exc_info=True)

    def _take(self) -> TraySnapshot:
        store, scheduler = self.handler.store, self.handler.scheduler
        counts = store.count_by_state()
        settings = store.settings()
        rows = []
        done = size = 0
        known = True
        for p in scheduler.running.progress_rows()[:SNAPSHOT_ROWS]:
            download_id = p["id"]
            name = store.get(download_id).name or f"#{download_id}"
            pct = 100.0 * p["done"] / p["size"] if p["size"] else None
            rows.append((download_id, name, pct))
            done += p["done"]
            if p["size"] is None:
                known = False
            else:
                size += p["size"]
        return TraySnapshot(
            active=counts.get("active", 0),
            queued=counts.get("queued", 0),
            paused=counts.get("paused", 0),
            failed=counts.get("failed", 0) + counts.get("needs_refresh", 0),
            completed=counts.get("completed", 0),
            speed=float(scheduler.running.speed()),
            progress=(done / size) if known and size else None,
            downloads=tuple(rows),
            global_limit=settings["global_limit"],
            capture=settings["capture"],
            download_dir=settings["download_dir"] or config.default_download_dir(),
            schedule=schedule_words(self.handler.schedule_report()),
        )

    # -- from the tray's threads -------------------------------------------------------------

    def _submit(self, make: Callable[[], Awaitable[Any] | Any]) -> None:
        async def run() -> None:
            try:
                value = make()
                if asyncio.iscoroutine(value):
                    await value
            except FreightError as exc:
                log.warning("tray action failed: %s", exc)
            except Exception:
                log.exception("tray action failed")
            self.refresh()  # show the result at the tray's next poll, not REFRESH later

        coro = run()
        try:
            asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop has closed: the daemon is stopping
            coro.close()
            log.info("tray action ignored: the daemon is stopping")

    def snapshot(self) -> TraySnapshot:
        return self._snap

    def pause_all(self) -> None:
        self._submit(lambda: self.handler.pause_all(self._session))

    def resume_all(self) -> None:
        self._submit(lambda: self.handler.resume_all(self._session))

    def set_global_limit(self, bytes_per_s: int | None) -> None:
        self._submit(
            lambda: self.handler.set_settings(self._session, {"global_limit": bytes_per_s})
        )

    def set_capture(self, enabled: bool) -> None:
        self._submit(lambda: self.handler.set_settings(self._session, {"capture": bool(enabled)}))

    def add_url(self, url: str) -> None:
        def add() -> Any:
            params = api.check_params("add", {"url": url.strip()})
            return self.handler.add(self._session, **params)

        self._submit(add)

    def open_download(self, download_id: int) -> None:
        self._submit(lambda: self.handler.open(self._session, download_id))

    def open_folder(self) -> None:
        def open_dir() -> None:
            folder = self.handler.store.settings()["download_dir"] or config.default_download_dir()
            os.makedirs(folder, exist_ok=True)
            open_path(folder)

        self._submit(open_dir)

    def clear_completed(self) -> None:
        self._submit(lambda: self.handler.clear(self._session))

    def quit(self) -> None:
        log.info("quit chosen in the tray")
        with contextlib.suppress(RuntimeError):  # the loop has closed: already stopping
            self.loop.call_soon_threadsafe(self.handler.request_stop)


async def _first(*waits: Awaitable[Any]) -> None:
    """Return once the first of ``waits`` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
