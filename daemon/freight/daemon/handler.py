"""The API's handler: every JSON-RPC method (docs/PROTOCOL.md "Methods"), as a thin call into
the user's actions, the scheduler or the store.

:attr:`ApiHandler.methods` maps each name of the protocol's method table
(:data:`freight.daemon.protocol.METHODS`) to the method that serves it, written out one by
one: no name is built at run time, and a test holds the two tables to the same names. The
protocol has checked and normalised every param before :meth:`ApiHandler.call` runs, so the
methods take them as keyword arguments, after the caller's :class:`~freight.daemon.events.
Session`. The tray calls the same methods, in-process, with a session of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from freight import __version__, config, rpc, secrets
from freight.daemon import protocol as api
from freight.daemon.actions import Actions
from freight.daemon.afterwards import Afterwards
from freight.daemon.events import Hub, Session
from freight.daemon.hookrules import check_settings
from freight.daemon.hooks import CompletionHooks
from freight.daemon.scheduler import Scheduler
from freight.daemon.server import ApiServer, Handler
from freight.errors import InputError
from freight.store import Store

log = logging.getLogger("freight.daemon")

#: Settings that run a program as the user or send every completion away: set only over a
#: connection no browser made (the CLI's, the tray's in-process calls).
_NOT_FROM_A_BROWSER = frozenset({"on_complete", "webhook"})

# Module-level names: inside the class, ``list`` is the method of that name.
Ids = list[int]
Names = list[str]


def no_tray(reason: str) -> dict[str, Any]:
    """``status``'s ``tray`` when the daemon shows no icon (docs/PROTOCOL.md "status")."""
    return {"shown": False, "backend": None, "menu": False, "reason": reason}


class ApiHandler(Handler):
    """Serves the API's methods; :attr:`stop_requested` is set when the daemon should stop
    (the ``shutdown`` method, a signal, the tray's Quit)."""

    def __init__(self, paths: config.Paths, store: Store, scheduler: Scheduler, hub: Hub) -> None:
        self.paths = paths
        self.store = store
        self.scheduler = scheduler
        self.actions = Actions(scheduler)
        self.afterwards = Afterwards(scheduler)
        self.hub = hub
        self.hooks = CompletionHooks(store, hub)  # on_complete and webhook (hooks.py)
        self.hooks.follow(store.settings())
        self.server: ApiServer | None = None
        self.stop_requested = asyncio.Event()
        self.started_at = time.time()
        #: The tray as a user sees it, read afresh by each ``status``: freight.daemon.app
        #: points it at the running tray's report, or at why there is none.
        self.tray_report: Callable[[], dict[str, Any]] = lambda: no_tray("not decided yet")
        #: The schedule's report for ``status`` (daemon/timekeeper.py), once app.py runs one.
        self.schedule_report: Callable[[], dict[str, Any] | None] = lambda: None
        #: protocol method name → the method serving it (each returns a value or a coroutine)
        self.methods: dict[str, Callable[..., Any]] = {
            "version": self.version,
            "status": self.status,
            "add": self.add,
            "add_many": self.add_many,
            "list": self.list,
            "get": self.get,
            "states": self.states,
            "pause": self.pause,
            "resume": self.resume,
            "cancel": self.cancel,
            "remove": self.remove,
            "refresh": self.refresh,
            "move": self.move,
            "set_limits": self.set_limits,
            "get_settings": self.get_settings,
            "set_settings": self.set_settings,
            "pause_all": self.pause_all,
            "resume_all": self.resume_all,
            "open": self.open,
            "subscribe": self.subscribe,
            "shutdown": self.shutdown,
            "clear": self.clear,
            "restart": self.restart,
        }

    async def call(self, session: Session, call: api.Call) -> Any:
        value = self.methods[call.method](session, **call.params)
        if asyncio.iscoroutine(value):
            value = await value
        return value

    def request_stop(self) -> None:
        self.stop_requested.set()

    # -- the methods, in docs/PROTOCOL.md's order -------------------------------------------

    def version(self, session: Session) -> dict[str, Any]:
        return {"version": __version__, "protocol": rpc.PROTOCOL_VERSION, "pid": os.getpid()}

    def status(self, session: Session) -> dict[str, Any]:
        counts = self.store.count_by_state()
        return {
            "active": counts.get("active", 0),
            "queued": counts.get("queued", 0),
            "paused": counts.get("paused", 0),
            "failed": counts.get("failed", 0) + counts.get("needs_refresh", 0),
            "completed": counts.get("completed", 0),
            "speed": self.scheduler.running.speed(),
            "global_limit": self.scheduler.limiter.rate,
            "pid": os.getpid(),
            "url": self.server.url if self.server else None,
            "version": __version__,
            "protocol": rpc.PROTOCOL_VERSION,
            "started_at": self.started_at,
            "keyring": secrets.backend_info(self.paths),
            "tray": self.tray_report(),
            "schedule": self.schedule_report(),
        }

    def add(self, session: Session, **params: Any) -> dict[str, Any]:
        return self.actions.add(params)

    def add_many(self, session: Session, **params: Any) -> dict[str, Any]:
        return self.actions.add_many(params)

    def list(self, session: Session, **params: Any) -> dict[str, Any]:
        return self.actions.list_downloads(**params)

    def get(self, session: Session, id: int) -> dict[str, Any]:
        return self.actions.get(id)

    def states(self, session: Session, ids: Ids) -> dict[str, Any]:
        return self.actions.states(ids)

    async def pause(self, session: Session, ids: Ids) -> dict[str, Any]:
        return {"ids": await self.actions.pause(ids)}

    def resume(self, session: Session, ids: Ids) -> dict[str, Any]:
        return {"ids": self.actions.resume(ids)}

    async def cancel(self, session: Session, ids: Ids) -> dict[str, Any]:
        return {"ids": await self.actions.cancel(ids)}

    async def remove(
        self, session: Session, ids: Ids, delete_file: bool = False
    ) -> dict[str, Any]:
        return {"ids": await self.actions.remove(ids, delete_file)}

    async def refresh(self, session: Session, **params: Any) -> dict[str, Any]:
        return await self.actions.refresh(params)

    def move(self, session: Session, id: int, to: str) -> dict[str, Any]:
        return self.actions.move(id, to)

    def set_limits(self, session: Session, **params: Any) -> dict[str, Any]:
        if "id" in params:
            self.store.get(params["id"])  # NotFound before the global part changes anything
        if "global_limit" in params:
            self._change_settings({"global_limit": params["global_limit"]})
        if "id" in params:
            self.actions.set_limit(params["id"], params["limit"])
        return {"global_limit": self.store.settings()["global_limit"]}

    def get_settings(self, session: Session) -> dict[str, Any]:
        return {"settings": self.store.settings()}

    def set_settings(self, session: Session, settings: dict[str, Any]) -> dict[str, Any]:
        # A program run as the user, or every completion sent to a URL, is the user's own
        # choice: from the CLI or the tray, never from a browser's connection (a page that
        # got hold of the extension would otherwise have code execution). docs/SECURITY.md
        refused = sorted(set(settings) & _NOT_FROM_A_BROWSER) if session.browser else []
        if refused:
            raise InputError(f"{', '.join(refused)} cannot be set from the browser: use "
                             f"`freight settings {refused[0]} ...` in a terminal")
        return {"settings": self._change_settings(settings)}

    def _change_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        # download_dir is checked by config.validate_setting, in the store, before it is saved.
        check_settings(changes)  # the protocol checked them too; the tray's calls skip it
        before = self.store.settings()
        settings = self.store.set_settings(changes)
        self.scheduler.apply_settings(settings)
        self.hooks.follow(settings)
        # Every browser's extension follows the capture rules from this event, live; `changed`
        # names what this request changed (the values as stored, after normalising).
        changed = {name: settings[name] for name in changes if settings[name] != before[name]}
        self.hub.publish("settings.changed", {"settings": settings, "changed": changed})
        return settings

    async def pause_all(self, session: Session) -> dict[str, Any]:
        return {"ids": await self.actions.pause_all()}

    def resume_all(self, session: Session) -> dict[str, Any]:
        return {"ids": self.actions.resume_all()}

    def open(self, session: Session, id: int, reveal: bool = False) -> dict[str, Any]:
        self.actions.open(id, reveal)
        return {"ok": True}

    def subscribe(
        self, session: Session, events: Names | None = None, rows: bool = True,
        states: Names | None = None,
    ) -> dict[str, Any]:
        return {"subscribed": session.subscribe(events, rows, states)}

    def shutdown(self, session: Session) -> dict[str, Any]:
        log.info("shutdown requested over the API")
        # After this reply is queued: the staged shutdown flushes outboxes before closing.
        asyncio.get_running_loop().call_soon(self.request_stop)
        return {"ok": True}

    def clear(self, session: Session) -> dict[str, Any]:
        return {"ids": self.afterwards.clear()}

    def restart(self, session: Session, id: int, again: bool = False) -> dict[str, Any]:
        return self.afterwards.restart(id, again)
