"""The daemon's wiring: build every part once, at the edge, serve, stop in stages.

``run_daemon(paths)`` takes the instance lock (:mod:`freight.daemon.instance`), then builds
the store, the hub, the scheduler, the API's handler and server once (as uvicorn's
``main.run`` builds its Config, then its Server), writes ``daemon.json``
(:mod:`freight.daemonfile`) and serves until SIGTERM/SIGINT, a ``shutdown`` request or the
tray's Quit; then it stops in named stages, each bounded in time (:func:`shutdown`).

Threads: one asyncio loop owns the API server, the scheduler and the store. With a tray, pystray
runs on the main thread (macOS requires it) and the loop in a worker thread; the tray talks to
the loop only through :class:`~freight.daemon.tray_bridge.TrayBridge`, which uses
``asyncio.run_coroutine_threadsafe``. Without a display (or with ``--no-tray``) the loop runs
on the main thread; with ``--no-tray`` the tray's modules (and Pillow) are never imported.

Signals take one path, with or without a tray (:class:`StopSignals`): ``signal.signal`` on the
main thread, installed before anything listens, forwards SIGTERM/SIGINT to the loop as a stop
request (asyncio's ``add_signal_handler`` would work only where the loop runs on the main
thread, which it does not with a tray). A handler only asks for the stop; the staged shutdown
does the work.
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
from collections.abc import Callable
from typing import Any

from freight import __version__, config, daemonfile, rpc, secrets
from freight.daemon import startfail
from freight.daemon.events import Hub
from freight.daemon.handler import ApiHandler, no_tray
from freight.daemon.instance import InstanceLock
from freight.daemon.origins import extension_origins
from freight.daemon.scheduler import Scheduler
from freight.daemon.server import ApiServer
from freight.daemon.timekeeper import Timekeeper
from freight.errors import FreightError, StoreError
from freight.store import Store

log = logging.getLogger("freight.daemon")

SHUTDOWN_TIMEOUT = 5.0  # seconds the transfers get to checkpoint and stop
EXIT_ALREADY_RUNNING = 1


# -- running ---------------------------------------------------------------------------------


def setup_logging(paths: config.Paths) -> None:
    from freight import logs

    logs.setup(paths.log_file, stderr_level=logging.INFO)
    # One line per connection is noise; refusals are logged by freight.daemon.server itself.
    logging.getLogger("websockets").setLevel(logging.WARNING)


class StopSignals:
    """SIGTERM and SIGINT as a stop request, whichever thread runs the loop.

    Installed on the main thread before the loop starts, because daemon.json appears as soon
    as the server listens, and a SIGTERM sent on seeing it must stop the daemon gracefully,
    not kill it and leave daemon.json behind. A signal that comes before :meth:`attach` is
    kept; ``attach`` reads it after it has published the loop, so one of the two always sees
    the other.
    """

    def __init__(self) -> None:
        self._early = threading.Event()
        self._target: tuple[asyncio.AbstractEventLoop, Callable[[], None]] | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def attach(self, loop: asyncio.AbstractEventLoop, request_stop: Callable[[], None]) -> None:
        self._target = (loop, request_stop)
        if self._early.is_set():
            request_stop()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._early.set()
        target = self._target
        if target is not None:
            loop, request_stop = target
            with contextlib.suppress(RuntimeError):  # the loop has closed: already stopping
                loop.call_soon_threadsafe(request_stop)


async def serve(
    paths: config.Paths,
    *,
    port: int | None = None,
    on_ready: Callable[[ApiHandler], None] | None = None,
    signals: StopSignals | None = None,
) -> int:
    """Run the daemon on the current loop until asked to stop; return the exit code."""
    loop = asyncio.get_running_loop()
    # Keyring calls block (tens of ms, more on a first D-Bus contact): off the loop.
    token = await asyncio.to_thread(secrets.get_token, paths)
    sealer = await asyncio.to_thread(secrets.sealer, paths)
    info = secrets.backend_info(paths)
    if info["fallback"]:
        log.warning("secrets are kept in files under %s (no OS keyring works)", paths.secrets_dir)
    try:
        store = Store(paths.database, sealer=sealer)
    except StoreError as exc:
        startfail.store_failed(paths, exc)
        return 1
    try:
        settings = store.settings()
        hub = Hub()
        scheduler = Scheduler(store, hub)
        handler = ApiHandler(paths, store, scheduler, hub)
        own_origins = extension_origins()
        current = {"token": token}

        async def reload() -> str:
            current["token"] = await asyncio.to_thread(secrets.reload_token, paths)
            return current["token"]

        server = ApiServer(
            handler,
            hub,
            token=lambda: current["token"],
            reload_token=reload,
            origins=lambda: own_origins | set(store.settings()["allowed_origins"]),
            port=settings["port"] if port is None else port,
        )
        handler.server = server
        try:
            await server.start()
        except OSError as exc:
            startfail.listen_failed(paths, settings["port"] if port is None else port, exc)
            return 1
        startfail.started(paths)
        if port is not None and port != settings["port"]:
            # `--port N` is how a user moves Freight off a taken port: every later start (by
            # the host, the CLI, the tray's autostart) must use it too. Saved here, by the
            # daemon, because the daemon owns the database (Store.settings), and only once
            # the port has proved usable.
            store.set_settings({"port": port})
            log.info("port %d recorded in the settings: later starts use it", port)
        timekeeper = Timekeeper(scheduler)
        timekeeper.start()  # before the scheduler's start: a held queue resumes nothing
        handler.schedule_report = timekeeper.report
        await scheduler.start()
        # Signals reach the handler before daemon.json exists: a client that found the file
        # may SIGTERM at once.
        if signals is not None:
            signals.attach(loop, handler.request_stop)
        daemonfile.write(
            paths,
            {"pid": os.getpid(), "port": server.port, "url": server.url,
             "protocol": rpc.PROTOCOL_VERSION, "started_at": handler.started_at,
             "secrets": info["backend"]},
        )
        log.info("freight daemon %s listening on %s (pid %d)", __version__, server.url,
                 os.getpid())
        if on_ready is not None:
            on_ready(handler)
        await handler.stop_requested.wait()
        await timekeeper.close()
        await shutdown(server, scheduler)
        return 0
    finally:
        store.close()
        daemonfile.remove_if_mine(paths)
        log.info("freight daemon stopped")


async def shutdown(server: ApiServer, scheduler: Scheduler) -> None:
    """The staged stop, each stage bounded in time (stage 4 is :func:`serve`'s ``finally``)."""
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


def _want_tray(tray: bool) -> tuple[bool, str]:
    """Whether to show a tray icon, and why not; when not, the log says why, once.

    Decided here, from this process's own environment, whoever started it: a terminal, or
    `freight start` run by the native host, which inherits the browser's DISPLAY /
    WAYLAND_DISPLAY. Only ``--no-tray`` turns it off on a display.
    """
    if not tray:
        log.info("no tray icon: --no-tray")
        return False, "--no-tray"
    from freight.tray import icon as tray_mod

    ok, reason, _ = tray_mod.available()
    if not ok:
        log.info("no tray icon: %s", reason)
    return ok, reason


def _says_no_tray(reason: str) -> Callable[[ApiHandler], None]:
    def on_ready(handler: ApiHandler) -> None:
        handler.tray_report = lambda: no_tray(reason)

    return on_ready


def run_daemon(paths: config.Paths, *, port: int | None = None, tray: bool = True) -> int:
    """`freight daemon`: run in the foreground until stopped. Returns the exit code."""
    try:
        paths.ensure()
        setup_logging(paths)
    except OSError as exc:
        startfail.folder_failed(paths, exc)
        return 1
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
    signals = StopSignals()
    signals.install()
    try:
        show_tray, why_not = _want_tray(tray)
        if show_tray:
            return _run_with_tray(paths, port, signals)
        return asyncio.run(serve(paths, port=port, signals=signals,
                                 on_ready=_says_no_tray(why_not)))
    except FreightError as exc:
        startfail.other_failed(paths, exc)
        return 1
    finally:
        lock.release()


def _run_with_tray(paths: config.Paths, port: int | None, signals: StopSignals) -> int:
    """pystray on the main thread, the asyncio loop in a worker thread.

    Stopping, whatever asks for it (SIGTERM/SIGINT, the API's shutdown, the tray's Quit),
    ends the loop; the loop thread then stops the tray, which ends ``Tray.run()`` here.
    """
    from freight.daemon.tray_bridge import TrayBridge
    from freight.tray.icon import Tray

    ready = threading.Event()
    holder: dict[str, Any] = {"code": 1}
    tray_ref: dict[str, Tray] = {}

    def on_ready(handler: ApiHandler) -> None:
        bridge = TrayBridge(handler, asyncio.get_running_loop())
        bridge.start()
        tray_ref["tray"] = Tray(bridge)
        handler.tray_report = tray_ref["tray"].report
        ready.set()

    def loop_thread() -> None:
        try:
            holder["code"] = asyncio.run(
                serve(paths, port=port, on_ready=on_ready, signals=signals)
            )
        except Exception:
            log.exception("the daemon's loop failed")
        finally:
            ready.set()
            if "tray" in tray_ref:
                tray_ref["tray"].stop()
                _exit_if_the_tray_hangs(holder)

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


#: How long the tray may take to end its loop once the daemon has stopped.
TRAY_STOP_GRACE = 5.0


def _exit_if_the_tray_hangs(holder: dict[str, Any]) -> None:
    """Everything is stopped and saved by now; only the icon's loop (on the main thread) is
    left. pystray's xorg backend never ends a loop that could not dock (no tray host took the
    icon), which kept a stopped daemon alive until the X server went away: after a grace
    period the process ends without it."""

    def watchdog() -> None:
        time.sleep(TRAY_STOP_GRACE)
        log.warning("the tray icon did not stop within %.0f s; exiting without it",
                    TRAY_STOP_GRACE)
        logging.shutdown()
        os._exit(int(holder["code"]))

    threading.Thread(target=watchdog, name="freight-tray-watchdog", daemon=True).start()


__all__ = ["run_daemon", "serve", "shutdown"]
