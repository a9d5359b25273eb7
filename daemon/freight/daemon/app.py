"""The daemon's wiring: one instance per FREIGHT_HOME, the API, the queue, the tray, shutdown.

``run_daemon(paths)`` builds every part once, at the edge (as uvicorn's ``main.run`` builds its
Config, then its Server), serves until SIGTERM/SIGINT, a ``shutdown`` request or the tray's
Quit, then stops in named stages with a timeout (see :meth:`Daemon.shutdown`).

Threads: one asyncio loop owns the API server, the scheduler and the store. With a tray, pystray
runs on the main thread (macOS requires it) and the loop in a worker thread; the tray talks to
the loop only through :class:`TrayBridge`, which uses ``asyncio.run_coroutine_threadsafe``.
Without a display (or with ``--no-tray``) the loop runs on the main thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from freight import __version__, config, daemonfile, rpc, secrets
from freight.daemon import protocol as api
from freight.daemon.events import Hub, Session
from freight.daemon.instance import InstanceLock
from freight.daemon.origins import extension_origins
from freight.daemon.scheduler import Scheduler, open_path
from freight.daemon.server import ApiServer, Handler
from freight.errors import FreightError, InputError
from freight.models import DownloadState
from freight.store import Store

log = logging.getLogger("freight.daemon")

SHUTDOWN_TIMEOUT = 5.0  # seconds the transfers get to checkpoint and stop
EXIT_ALREADY_RUNNING = 1


# -- the API's handler -----------------------------------------------------------------------


class Daemon(Handler):
    """Every JSON-RPC method, as a thin call into the scheduler or the store."""

    def __init__(self, paths: config.Paths, store: Store, scheduler: Scheduler, hub: Hub) -> None:
        self.paths = paths
        self.store = store
        self.scheduler = scheduler
        self.hub = hub
        self.server: ApiServer | None = None
        self.stop_requested = asyncio.Event()
        self.started_at = time.time()

    async def call(self, session: Session, call: api.Call) -> Any:
        method = getattr(self, "rpc_" + call.method)
        value = method(session, **call.params)
        if asyncio.iscoroutine(value):
            value = await value
        return value

    def request_stop(self) -> None:
        self.stop_requested.set()

    # -- methods (docs/PROTOCOL.md "Methods") ---------------------------------------------

    def rpc_version(self, session: Session) -> dict[str, Any]:
        return {"version": __version__, "protocol": rpc.PROTOCOL_VERSION, "pid": os.getpid()}

    def rpc_status(self, session: Session) -> dict[str, Any]:
        counts = self.store.count_by_state()
        return {
            "active": counts.get("active", 0),
            "queued": counts.get("queued", 0),
            "paused": counts.get("paused", 0),
            "failed": counts.get("failed", 0) + counts.get("needs_refresh", 0),
            "completed": counts.get("completed", 0),
            "speed": self.scheduler.speed(),
            "global_limit": self.scheduler.limiter.rate,
            "pid": os.getpid(),
            "url": self.server.url if self.server else None,
            "version": __version__,
            "protocol": rpc.PROTOCOL_VERSION,
            "started_at": self.started_at,
            "keyring": secrets.backend_info(self.paths),
        }

    def rpc_add(self, session: Session, **params: Any) -> dict[str, Any]:
        return self.scheduler.add(params)

    def rpc_list(self, session: Session, **params: Any) -> dict[str, Any]:
        return self.scheduler.list(**params)

    def rpc_get(self, session: Session, id: int) -> dict[str, Any]:
        return self.scheduler.get(id)

    async def rpc_pause(self, session: Session, ids: list[int]) -> dict[str, Any]:
        return {"ids": await self.scheduler.pause(ids)}

    def rpc_resume(self, session: Session, ids: list[int]) -> dict[str, Any]:
        return {"ids": self.scheduler.resume(ids)}

    async def rpc_cancel(self, session: Session, ids: list[int]) -> dict[str, Any]:
        return {"ids": await self.scheduler.cancel(ids)}

    async def rpc_remove(
        self, session: Session, ids: list[int], delete_file: bool = False
    ) -> dict[str, Any]:
        return {"ids": await self.scheduler.remove(ids, delete_file)}

    async def rpc_refresh(self, session: Session, **params: Any) -> dict[str, Any]:
        return await self.scheduler.refresh(params)

    def rpc_move(self, session: Session, id: int, to: str) -> dict[str, Any]:
        return self.scheduler.move(id, to)

    def rpc_set_limits(self, session: Session, **params: Any) -> dict[str, Any]:
        if "id" in params:
            self.store.get(params["id"])  # NotFound before the global part changes anything
        if "global_limit" in params:
            self._set_settings({"global_limit": params["global_limit"]})
        if "id" in params:
            self.scheduler.set_limit(params["id"], params["limit"])
        return {"global_limit": self.store.settings()["global_limit"]}

    def rpc_get_settings(self, session: Session) -> dict[str, Any]:
        return {"settings": self.store.settings()}

    def rpc_set_settings(self, session: Session, settings: dict[str, Any]) -> dict[str, Any]:
        return {"settings": self._set_settings(settings)}

    def _set_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        folder = changes.get("download_dir")
        if folder and not os.path.isabs(folder):
            raise InputError("download_dir must be an absolute path", setting="download_dir")
        settings = self.store.set_settings(changes)
        self.scheduler.apply_settings(settings)
        self.hub.publish("settings.changed", {"settings": settings})
        return settings

    async def rpc_pause_all(self, session: Session) -> dict[str, Any]:
        return {"ids": await self.scheduler.pause_all()}

    def rpc_resume_all(self, session: Session) -> dict[str, Any]:
        return {"ids": self.scheduler.resume_all()}

    def rpc_open(self, session: Session, id: int, reveal: bool = False) -> dict[str, Any]:
        self.scheduler.open(id, reveal)
        return {"ok": True}

    def rpc_subscribe(self, session: Session, events: list[str] | None = None) -> dict[str, Any]:
        return {"subscribed": session.subscribe(events)}

    def rpc_shutdown(self, session: Session) -> dict[str, Any]:
        log.info("shutdown requested over the API")
        # After this reply is queued: the staged shutdown flushes outboxes before closing.
        asyncio.get_running_loop().call_soon(self.request_stop)
        return {"ok": True}


# -- the tray's view of the daemon -----------------------------------------------------------


class TrayBridge:
    """Implements freight.tray.TrayController: called from the tray's threads, every method
    returns at once and does its work on the daemon's loop.

    :meth:`snapshot` never waits for the loop (the tray polls it on its own thread, and a
    busy loop must not freeze the icon): it returns the last snapshot, which the loop
    refreshes every :attr:`REFRESH` seconds and right after each tray action.
    """

    REFRESH = 0.5  # seconds; the tray redraws at most once a second

    def __init__(self, daemon: Daemon, loop: asyncio.AbstractEventLoop) -> None:
        from freight.tray.model import TraySnapshot

        self.daemon = daemon
        self.loop = loop
        self._snap = TraySnapshot()
        self._session = Session("tray")
        self._task: asyncio.Task[None] | None = None

    # -- on the loop ------------------------------------------------------------------------

    def start(self) -> None:
        """Take the first snapshot and keep it fresh until the daemon stops (on the loop)."""
        self.refresh()
        self._task = self.loop.create_task(self._refresh_until_stopped())

    async def _refresh_until_stopped(self) -> None:
        stop = self.daemon.stop_requested
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.REFRESH)
            if not stop.is_set():
                self.refresh()

    def refresh(self) -> None:
        """Read the daemon's state into a new snapshot (on the loop; never raises)."""
        try:
            self._snap = self._take()  # one reference assignment: atomic for the tray's thread
        except Exception:
            log.debug("tray snapshot failed; the tray keeps the last one", exc_info=True)

    def _take(self) -> Any:
        from freight.tray.model import TraySnapshot

        d = self.daemon
        counts = d.store.count_by_state()
        settings = d.store.settings()
        rows = []
        done = size = 0
        known = True
        for download_id, run in list(d.scheduler.running.items())[:5]:
            p = run.transfer.progress()
            name = d.store.get(download_id).name or f"#{download_id}"
            pct = 100.0 * p.done / p.size if p.size else None
            rows.append((download_id, name, pct))
            done += p.done
            if p.size is None:
                known = False
            else:
                size += p.size
        return TraySnapshot(
            active=counts.get("active", 0),
            queued=counts.get("queued", 0),
            paused=counts.get("paused", 0),
            failed=counts.get("failed", 0) + counts.get("needs_refresh", 0),
            speed=float(d.scheduler.speed()),
            progress=(done / size) if known and size else None,
            downloads=tuple(rows),
            global_limit=settings["global_limit"],
            capture=settings["capture"],
            download_dir=settings["download_dir"] or config.default_download_dir(),
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

    def snapshot(self) -> Any:
        return self._snap

    def pause_all(self) -> None:
        self._submit(lambda: self.daemon.rpc_pause_all(self._session))

    def resume_all(self) -> None:
        self._submit(lambda: self.daemon.rpc_resume_all(self._session))

    def set_global_limit(self, bytes_per_s: int | None) -> None:
        self._submit(lambda: self.daemon._set_settings({"global_limit": bytes_per_s}))

    def set_capture(self, enabled: bool) -> None:
        self._submit(lambda: self.daemon._set_settings({"capture": bool(enabled)}))

    def add_url(self, url: str) -> None:
        def add() -> Any:
            params = api.check_params("add", {"url": url.strip()})
            return self.daemon.rpc_add(self._session, **params)

        self._submit(add)

    def open_download(self, download_id: int) -> None:
        self._submit(lambda: self.daemon.rpc_open(self._session, download_id))

    def open_folder(self) -> None:
        def open_dir() -> None:
            folder = self.daemon.store.settings()["download_dir"] or config.default_download_dir()
            os.makedirs(folder, exist_ok=True)
            open_path(folder)

        self._submit(open_dir)

    def quit(self) -> None:
        log.info("quit chosen in the tray")
        with contextlib.suppress(RuntimeError):  # the loop has closed: already stopping
            self.loop.call_soon_threadsafe(self.daemon.request_stop)


# -- running ---------------------------------------------------------------------------------


def setup_logging(paths: config.Paths) -> None:
    from freight import logs

    logs.setup(paths.log_file, stderr_level=logging.INFO)
    # One line per connection is noise; refusals are logged by freight.server itself.
    logging.getLogger("websockets").setLevel(logging.WARNING)


async def serve(
    paths: config.Paths,
    *,
    port: int | None = None,
    on_ready: Callable[[Daemon], None] | None = None,
) -> int:
    """Run the daemon on the current loop until asked to stop; return the exit code."""
    loop = asyncio.get_running_loop()
    # Keyring calls block (tens of ms, more on a first D-Bus contact): off the loop.
    token = await asyncio.to_thread(secrets.get_token, paths)
    sealer = await asyncio.to_thread(secrets.sealer, paths)
    info = secrets.backend_info(paths)
    if info["fallback"]:
        log.warning("secrets are kept in files under %s (no OS keyring works)", paths.secrets_dir)
    store = Store(paths.database, sealer=sealer)
    try:
        settings = store.settings()
        hub = Hub()
        scheduler = Scheduler(store, hub)
        daemon = Daemon(paths, store, scheduler, hub)
        own_origins = extension_origins()
        current = {"token": token}

        async def reload() -> str:
            current["token"] = await asyncio.to_thread(secrets.reload_token, paths)
            return current["token"]

        server = ApiServer(
            daemon,
            hub,
            token=lambda: current["token"],
            reload_token=reload,
            origins=lambda: own_origins | set(store.settings()["allowed_origins"]),
            port=settings["port"] if port is None else port,
        )
        daemon.server = server
        try:
            await server.start()
        except OSError as exc:
            log.error("cannot listen on 127.0.0.1:%s: %s", settings["port"] if port is None
                      else port, exc)
            return 1
        await scheduler.start()
        # Handlers before daemon.json: a client that found the file may SIGTERM at once.
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                # Handlers only set a flag; the work happens in the staged shutdown below.
                loop.add_signal_handler(signum, daemon.request_stop)
        daemonfile.write(
            paths,
            {"pid": os.getpid(), "port": server.port, "url": server.url,
             "protocol": rpc.PROTOCOL_VERSION, "started_at": daemon.started_at},
        )
        log.info("freight daemon %s listening on %s (pid %d)", __version__, server.url,
                 os.getpid())
        if on_ready is not None:
            on_ready(daemon)
        await daemon.stop_requested.wait()
        await shutdown(daemon, server, scheduler)
        return 0
    finally:
        store.close()
        daemonfile.remove_if_mine(paths)
        log.info("freight daemon stopped")


async def shutdown(daemon: Daemon, server: ApiServer, scheduler: Scheduler) -> None:
    """The staged stop, each stage bounded in time."""
    started = time.monotonic()
    # Stage 1: stop accepting connections and new work; open clients still get replies.
    log.info("stopping: no new connections or work")
    server.stop_accepting()
    # Stage 2: stop every transfer with "shutdown": each checkpoints (fdatasync, then the
    # record) and stays `active`, so that the next start resumes it.
    await scheduler.shutdown(SHUTDOWN_TIMEOUT)
    # Stage 3: close the clients (1001 going away) after flushing their outboxes.
    await server.close(timeout=1.0)
    log.info("stopped in %.2f s", time.monotonic() - started)
    # Stage 4 (the caller): close the store, remove daemon.json, release the lock.


def _want_tray(tray: bool) -> bool:
    """Whether to show a tray icon; when not, the log says why, once."""
    if not tray:
        log.info("no tray icon: --no-tray")
        return False
    from freight.tray import icon as tray_mod

    ok, reason, _ = tray_mod.available()
    if not ok:
        log.info("no tray icon: %s", reason)
    return ok


def run_daemon(paths: config.Paths, *, port: int | None = None, tray: bool = True) -> int:
    """`freight daemon`: run in the foreground until stopped. Returns the exit code."""
    paths.ensure()
    setup_logging(paths)
    lock = InstanceLock(paths.lock_file)
    if not lock.acquire():
        other = daemonfile.read_live(paths) or {}
        where = other.get("url", "an unknown address")
        print(
            f"freight: a daemon already runs for {paths.data_dir} "
            f"(pid {other.get('pid', '?')}, {where})",
            file=sys.stderr,
        )
        return EXIT_ALREADY_RUNNING
    try:
        if _want_tray(tray):
            return _run_with_tray(paths, port)
        return asyncio.run(serve(paths, port=port))
    except FreightError as exc:
        log.error("%s", exc)
        return 1
    finally:
        lock.release()


def _run_with_tray(paths: config.Paths, port: int | None) -> int:
    """pystray on the main thread, the asyncio loop in a worker thread.

    Stopping, whatever asks for it (SIGTERM/SIGINT, the API's shutdown, the tray's Quit),
    ends the loop; the loop thread then stops the tray, which ends ``Tray.run()`` here.
    """
    from freight.tray.icon import Tray

    ready = threading.Event()
    stop_early = threading.Event()
    holder: dict[str, Any] = {"code": 1}
    tray_ref: dict[str, Tray] = {}

    # Signals go to the main thread (asyncio's add_signal_handler works only there): forward
    # them to the loop as a stop request. Installed before the loop starts, because
    # daemon.json appears as soon as the server listens, and a SIGTERM sent on seeing it
    # must stop the daemon gracefully, not kill it and leave daemon.json behind. A signal
    # before the loop is ready is kept in ``stop_early``; on_ready reads it after it has
    # published the loop, so one of the two always sees the other.
    def on_signal(signum: int, frame: object) -> None:
        stop_early.set()
        loop, daemon = holder.get("loop"), holder.get("daemon")
        if loop is not None and daemon is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: already stopping
                loop.call_soon_threadsafe(daemon.request_stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def on_ready(daemon: Daemon) -> None:
        bridge = TrayBridge(daemon, asyncio.get_running_loop())
        bridge.start()
        tray_ref["tray"] = Tray(bridge)
        holder["daemon"] = daemon
        holder["loop"] = asyncio.get_running_loop()
        if stop_early.is_set():
            daemon.request_stop()
        ready.set()

    def loop_thread() -> None:
        try:
            holder["code"] = asyncio.run(serve(paths, port=port, on_ready=on_ready))
        except Exception:
            log.exception("the daemon's loop failed")
        finally:
            ready.set()
            if "tray" in tray_ref:
                tray_ref["tray"].stop()

    worker = threading.Thread(target=loop_thread, name="freight-loop")
    worker.start()
    ready.wait()
    if "tray" in tray_ref and worker.is_alive():
        try:
            tray_ref["tray"].run()  # False: no icon after all; Tray.run said why, once
        except Exception:
            # A broken tray must not take the daemon down, nor leave it without a way to
            # stop: it keeps serving headless, and signals still reach it.
            log.exception("the tray icon failed; the daemon runs on without it")
    worker.join()
    return int(holder["code"])


__all__ = ["Daemon", "TrayBridge", "run_daemon", "serve", "extension_origins", "DownloadState"]
