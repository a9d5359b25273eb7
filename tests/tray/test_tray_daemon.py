"""The tray inside the real daemon: ``freight daemon`` on Xvfb with trayer and a session bus.

test_tray_display.py drives the tray with a recording controller; here nothing is stood in
for. A real ``python -m freight daemon --port 0`` process (under ``dbus-run-session``, with
DISPLAY set and its own FREIGHT_HOME) downloads a throttled file from the fault server, and
we check, from outside the process only:

- its icon docks in trayer and is drawn in the "downloading" colour (root-window screenshots
  in test-output/tray/daemon-*.png);
- the icon's title says "1 active";
- an xdotool click on "Pause all" pauses the download, as the API reports; "Resume all"
  makes it active again; both change the icon;
- Quit, through its confirmation submenu, stops the daemon gracefully: exit status 0,
  daemon.json removed, the download still ``active`` in the database so the next start
  resumes it;
- without a display, and with ``--no-tray``, the daemon runs headless and says so once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, make_data
from freight import config, secrets
from freight.client import Client
from freight.tray import model as tray_icon
from freight.tray.icon import available
from freight.tray.model import IconState, TraySnapshot
from test_tray_display import _color_count, box_of, click_menu_item, open_menu
from xsession import XSession, missing_tools, x_session

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent.parent / "test-output" / "tray"

SIZE = 32 * 1024 * 1024
#: Slow enough that the download is still running when Quit is clicked (~20 s later), on
#: any number of connections: the download's own limit caps the total.
LIMIT = 256 * 1024
SERVER_RATE = 64 * 1024  # per connection


def _ci_fail_or_skip(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _need_display_tools() -> None:
    missing = missing_tools()
    if missing:
        _ci_fail_or_skip(
            f"tray daemon test needs {', '.join(missing)} (apt: xvfb trayer xdotool imagemagick "
            "dbus)"
        )


def _daemon_env(base: dict[str, str], home: Path) -> dict[str, str]:
    env = dict(base)
    env.update(
        FREIGHT_HOME=str(home),
        FREIGHT_DOWNLOAD_DIR=str(home / "downloads"),
        # Secrets in 0600 files under FREIGHT_HOME: never a user's keyring.
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "PYSTRAY_BACKEND"):
        env.pop(name, None)
    return env


@dataclass
class Daemon:
    """A started daemon process (maybe wrapped in dbus-run-session) and how to reach it."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    paths: config.Paths
    output: Path
    pid: int = 0  # the daemon's own pid (daemon.json), not dbus-run-session's

    def log(self) -> str:
        try:
            return self.output.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    _client: Client | None = None

    def call(self, method: str, **params: Any) -> Any:
        """One API call on a connection kept open for the test (authenticated as the CLI)."""
        if self._client is None:
            # The token lives where the daemon's environment says: read it with that one.
            saved = dict(os.environ)
            os.environ.update(self.env)
            try:
                secrets.forget_cache()
                self._client = Client.connect(self.paths)
            finally:
                os.environ.clear()
                os.environ.update(saved)
                secrets.forget_cache()
        return self._client.call(method, timeout=15, **params)

    def close_client(self) -> None:
        if self._client is not None:
            with suppress(Exception):  # the daemon may have closed it already
                self._client.close()
            self._client = None

    def state(self, download_id: int) -> str:
        return str(self.call("get", id=download_id)["state"])


@contextmanager
def running_daemon(
    env: dict[str, str], home: Path, *args: str, bus: bool = False
) -> Iterator[Daemon]:
    """``python -m freight daemon --port 0 ARGS``; stopped with SIGTERM if still running."""
    paths = config.paths_from_env(env)
    paths.ensure()
    output = home / "daemon.out"
    command = [sys.executable, "-m", "freight", "daemon", "--port", "0", *args]
    if bus:
        # A private session bus, as on a desktop (else GLib would spawn one of its own).
        command = ["dbus-run-session", "--", *command]
    with output.open("ab") as out:
        proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    daemon = Daemon(proc, env, paths, output)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"daemon exited with {proc.returncode}:\n{daemon.log()}"
            with suppress(OSError, ValueError, KeyError):
                daemon.pid = int(json.loads(paths.daemon_file.read_text())["pid"])
                break
            assert time.monotonic() < deadline, f"daemon did not start:\n{daemon.log()}"
            time.sleep(0.05)
        yield daemon
    finally:
        daemon.close_client()
        if proc.poll() is None:
            # dbus-run-session does not forward signals: signal the daemon itself.
            with suppress(ProcessLookupError):
                os.kill(daemon.pid or proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                # Kill the daemon, not dbus-run-session: that one then ends its bus too.
                with suppress(ProcessLookupError):
                    os.kill(daemon.pid or proc.pid, signal.SIGKILL)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Looking at the tray from outside


def docked_icon(xs: XSession, prefix: str, timeout: float = 20) -> dict[str, Any]:
    """The daemon's icon inside trayer's panel, found by the start of its title (the speed
    in the title changes every second)."""

    def find() -> dict[str, Any] | None:
        for window in xs.windows():
            if str(window["name"]).startswith(prefix) and int(window["depth"]) >= 2:
                return window
        return None

    icon = wait_for(find, timeout, f"a docked window titled {prefix!r}…")
    assert icon["y"] < 40 and icon["x"] + icon["width"] > 800 - 80, icon  # top right
    return icon


def assert_icon_color(xs: XSession, icon: dict[str, Any], state: IconState, shot: Path) -> None:
    """The state's colour covers a good part of the icon and appears nowhere below the panel."""
    color = tray_icon.COLORS[state][:3]
    area = int(icon["width"]) * int(icon["height"])

    def drawn() -> bool:
        image = xs.screenshot(shot)
        return _color_count(image, color, box_of(icon)) > area // 5

    wait_for(drawn, 10, f"the {state} icon to be drawn (see {shot})")
    image = xs.screenshot(shot)
    assert _color_count(image, color, (0, 40, image.width, image.height)) == 0


def open_submenu(xs: XSession, menu: dict[str, Any]) -> dict[str, Any]:
    """The submenu that a click on a menu item opened: a second popup beside the menu."""

    def find() -> dict[str, Any] | None:
        popups = [
            w for w in xs.windows()
            if w["override_redirect"] and w["depth"] == 0 and w["id"] != menu["id"]
            and int(w["height"]) > 10
        ]
        return popups[0] if popups else None

    submenu = wait_for(find, 10, "the Quit submenu to open")
    time.sleep(0.5)  # mapped is not yet painted
    return submenu


def _active_snapshot(download_id: int) -> TraySnapshot:
    """What the tray shows with our one download running: the rows of its menu."""
    return TraySnapshot(active=1, downloads=((download_id, "big.bin", 0.0),))


# --------------------------------------------------------------------------------------------
# The tests


@pytest.mark.display
@pytest.mark.timeout(120)
@pytest.mark.parametrize("forced", [None, "gtk"], ids=["auto-appindicator", "gtk"])
def test_daemon_tray_pause_resume_and_quit(tmp_path, forced):
    """``forced`` None: the daemon picks its backend itself (appindicator where PyGObject
    and the typelib are there, as in CI); "gtk": PYSTRAY_BACKEND=gtk, the XEmbed status icon."""
    _need_display_tools()
    data = make_data(SIZE)
    with x_session(tmp_path / "x") as xs, FaultServer() as srv:
        check = subprocess.run(
            # available() probes GTK on the test's display, in a process of its own.
            [sys.executable, str(HERE / "test_tray_display.py"), "--check",
             *(["--backend", forced] if forced else [])],
            env=xs.env, capture_output=True, text=True, timeout=60,
        )
        assert check.returncode == 0, check.stderr
        ok, reason, backend = json.loads(check.stdout.strip().splitlines()[-1])
        if not ok or backend not in ("appindicator", "gtk"):
            _ci_fail_or_skip(f"no gtk/appindicator tray here: {reason} "
                             "(pip install 'freight[tray-gtk]')")
        url = srv.add("/big.bin", data, etag="v1", rate=SERVER_RATE)
        home = tmp_path / "freight"
        env = _daemon_env(xs.env, home)
        if forced:
            env["PYSTRAY_BACKEND"] = forced

        def shot(name: str) -> Path:
            return OUTPUT / f"daemon-{name}-{backend}.png"

        with running_daemon(env, home, bus=True) as daemon:
            # -- a running download: the icon docks, drawn "downloading", titled "1 active"
            download_id = int(daemon.call("add", url=url, limit=LIMIT)["id"])
            wait_for(lambda: daemon.state(download_id) == "active", 10, "the download to start")
            icon = docked_icon(xs, "Freight — 1 active")
            assert_icon_color(xs, icon, IconState.DOWNLOADING, shot("docked"))
            assert f"tray icon: {backend} backend" in daemon.log()

            # -- Pause all, clicked in the menu, pauses the download (the API says so)
            menu = open_menu(xs, icon, backend)
            click_menu_item(xs, menu, _active_snapshot(download_id), "Pause all",
                            shot("menu"))
            wait_for(lambda: daemon.state(download_id) == "paused", 10,
                     "the API to report the download paused")
            status = daemon.call("status")
            assert (status["active"], status["paused"]) == (0, 1), status
            done_when_paused = int(daemon.call("get", id=download_id)["done"])
            assert done_when_paused < SIZE
            paused = docked_icon(xs, "Freight — 1 paused", timeout=10)
            assert_icon_color(xs, paused, IconState.PAUSED, shot("paused"))

            # -- Resume all makes it active again, and it moves on
            menu = open_menu(xs, paused, backend)
            click_menu_item(xs, menu, TraySnapshot(paused=1), "Resume all",
                            shot("menu-paused"))
            wait_for(lambda: daemon.state(download_id) == "active", 10,
                     "the API to report the download active again")
            wait_for(lambda: int(daemon.call("get", id=download_id)["done"]) > done_when_paused,
                     10, "the resumed download to make progress")
            icon = docked_icon(xs, "Freight — 1 active", timeout=10)
            assert_icon_color(xs, icon, IconState.DOWNLOADING, shot("resumed"))

            # -- Quit asks first (a submenu) while a download runs; its item stops the daemon
            menu = open_menu(xs, icon, backend)
            click_menu_item(xs, menu, _active_snapshot(download_id), "Quit",
                            shot("menu-quit"))
            submenu = open_submenu(xs, menu)
            xs.screenshot(shot("quit-submenu"))
            assert daemon.proc.poll() is None, "Quit alone must not stop the daemon"
            xs.click(submenu["x"] + submenu["width"] // 3,
                     submenu["y"] + submenu["height"] // 2)
            try:
                code = daemon.proc.wait(20)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"Quit did not stop the daemon:\n{daemon.log()}") from None
            log = daemon.log()
            assert code == 0, log
            assert not daemon.paths.daemon_file.exists(), "daemon.json left behind"
            assert "stopping: no new connections or work" in log
            assert "freight daemon stopped" in log
            assert "Traceback" not in log, log
            # Stopped, not paused: the download stays active so that the next start resumes it.
            with sqlite3.connect(daemon.paths.database) as db:
                (state,) = db.execute(
                    "SELECT state FROM downloads WHERE id = ?", (download_id,)
                ).fetchone()
            assert state == "active"
            # The icon went with it.
            wait_for(lambda: not any(str(w["name"]).startswith("Freight —")
                                     for w in xs.windows()), 10, "the icon to go away")

        # -- --no-tray on the same display: headless, said once, no icon
        home2 = tmp_path / "no-tray"
        with running_daemon(_daemon_env(xs.env, home2), home2, "--no-tray") as daemon:
            assert daemon.call("version")["pid"] == daemon.pid
            time.sleep(1.5)  # a tray would have docked by now
            assert not any(str(w["name"]).startswith("Freight") for w in xs.windows())
            os.kill(daemon.pid, signal.SIGTERM)
            assert daemon.proc.wait(20) == 0, daemon.log()
            said = [line for line in daemon.log().splitlines() if "tray icon" in line]
            assert len(said) == 1 and "no tray icon: --no-tray" in said[0], said


def test_daemon_without_display_runs_headless_and_says_so_once(tmp_path):
    env = _daemon_env(dict(os.environ), tmp_path / "freight")
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    env["HOME"] = str(tmp_path / "home")
    home = tmp_path / "freight"
    with running_daemon(env, home) as daemon:
        assert daemon.call("version")["pid"] == daemon.pid
        status = daemon.call("status")
        assert status["active"] == 0
        os.kill(daemon.pid, signal.SIGTERM)
        assert daemon.proc.wait(20) == 0, daemon.log()
    log = daemon.log()
    said = [line for line in log.splitlines() if "tray icon" in line]
    assert len(said) == 1, said
    assert "no tray icon" in said[0] and "no display" in said[0]
    assert not daemon.paths.daemon_file.exists()
    assert available(environ={})[0] is False  # the same answer in this process


@pytest.mark.display
def test_sigterm_right_after_start_stops_the_tray_daemon_gracefully(tmp_path):
    """daemon.json appears as soon as the API listens, while the icon is still being built.
    A SIGTERM sent on seeing it (as `freight stop` right after `freight start` does) must
    stop the daemon, tray included: exit 0, daemon.json removed. Before the fix, the loop
    stopped but the icon, not yet running, missed its stop() and the process served it
    forever; a SIGTERM before the handlers were installed killed it outright."""
    _need_display_tools()
    with x_session(tmp_path / "x") as xs:
        for attempt in range(3):
            home = tmp_path / f"freight-{attempt}"
            with running_daemon(_daemon_env(xs.env, home), home, bus=True) as daemon:
                os.kill(daemon.pid, signal.SIGTERM)  # at once: no wait for the icon
                try:
                    code = daemon.proc.wait(15)
                except subprocess.TimeoutExpired:
                    raise AssertionError(
                        f"attempt {attempt}: the daemon did not stop:\n{daemon.log()}"
                    ) from None
                assert code == 0, daemon.log()
                assert not daemon.paths.daemon_file.exists(), daemon.log()
                assert "freight daemon stopped" in daemon.log()


def test_tray_bridge_snapshot_never_waits_for_the_loop(tmp_path):
    """The tray polls snapshot() on its own thread: a busy loop must not freeze it. The
    bridge answers from a snapshot the loop refreshes (and refreshes after each action)."""
    from freight.daemon.events import Hub
    from freight.daemon.handler import ApiHandler as FreightDaemon
    from freight.daemon.scheduler import Scheduler
    from freight.daemon.tray_bridge import TrayBridge
    from freight.store import Store

    paths = config.paths_from_env({"FREIGHT_HOME": str(tmp_path / "freight")}).ensure()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    store: Store | None = None

    async def build() -> tuple[Store, FreightDaemon, TrayBridge]:
        store = Store(paths.database)
        hub = Hub()
        daemon = FreightDaemon(paths, store, Scheduler(store, hub), hub)
        bridge = TrayBridge(daemon, asyncio.get_running_loop())
        bridge.start()
        return store, daemon, bridge

    try:
        store, daemon, bridge = asyncio.run_coroutine_threadsafe(build(), loop).result(10)
        assert bridge.snapshot().global_limit is None
        bridge.set_global_limit(2 * 1024 * 1024)  # a tray action: refreshed once it is done
        wait_for(lambda: bridge.snapshot().global_limit == 2 * 1024 * 1024, 5,
                 "the snapshot to show the new limit")
        assert store.settings()["global_limit"] == 2 * 1024 * 1024

        loop.call_soon_threadsafe(time.sleep, 2.0)  # the loop is busy for 2 s
        time.sleep(0.1)
        started = time.monotonic()
        snap = bridge.snapshot()
        took = time.monotonic() - started
        assert took < 0.05, f"snapshot() waited {took:.2f} s for a busy loop"
        assert snap.global_limit == 2 * 1024 * 1024 and snap.active == 0

        bridge.quit()  # Quit in the tray: the daemon's graceful stop is requested
        wait_for(daemon.stop_requested.is_set, 5, "quit to request the daemon's stop")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        if store is not None:
            store.close()
    # An action after the loop has gone is ignored with a log line, never an exception.
    bridge.pause_all()
    bridge.quit()
