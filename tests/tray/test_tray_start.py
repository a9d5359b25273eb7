"""A daemon started the way the native host starts it (`freight start`) shows its tray, and
`status`, `freight status` and `freight doctor` report the tray as a user sees it.

Everything runs for real on Xvfb with trayer as the tray host and a session bus of its own
that outlives `freight start` (as a desktop's does): the daemon is a detached process, seen
from outside only, through the X window tree, its API and the CLI's output.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from freight import config
from freight.store import Store
from freight_host.framing import BROWSER_TO_HOST_MAX, FrameDecoder, encode
from test_tray_daemon import docked_icon, wait_for
from test_tray_display import open_menu
from xsession import XSession, missing_tools, session_bus, x_session


def _need_display_tools() -> None:
    missing = missing_tools()
    assert not missing, (f"these tests need {', '.join(missing)} "
                         "(apt: xvfb trayer xdotool imagemagick dbus)")


def _env(base: dict[str, str], home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base.items()
           if k not in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                        "PYSTRAY_BACKEND")}
    env.update(FREIGHT_HOME=str(home), FREIGHT_DOWNLOAD_DIR=str(home / "downloads"),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", **extra)
    paths = config.paths_from_env(env).ensure()
    store = Store(paths.database)
    store.set_settings({"port": 0})  # never the default port: a user's daemon may hold it
    store.close()
    return env


def freight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freight", *args], env=env,
                          capture_output=True, text=True, timeout=90)


@contextmanager
def started(env: dict[str, str]) -> Iterator[int]:
    """`freight start`, as the host runs it; yields the daemon's pid, stops it after."""
    done = freight(env, "start")
    paths = config.paths_from_env(env)
    assert done.returncode == 0, (done.stdout, done.stderr, _log(paths))
    pid = int(json.loads(paths.daemon_file.read_text())["pid"])
    try:
        yield pid
    finally:
        stop = freight(env, "stop")
        if stop.returncode != 0 or paths.daemon_file.exists():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Gone, and its windows with it (the X server drops them with its connection): the
        # next test on this display must not see this daemon's icon.
        wait_for(lambda: not _alive(pid), 20, f"the daemon (pid {pid}) to exit")
        assert stop.returncode == 0, stop.stderr


def _alive(pid: int) -> bool:
    """Running: not gone, and not a zombie waiting for a parent that may never reap it
    (the detached daemon's parent is whatever init this machine has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _log(paths: config.Paths) -> str:
    text = ""
    for name in ("freight.log", "daemon-stderr.log"):
        with suppress(OSError):
            text += (paths.log_dir / name).read_text(errors="replace")[-4000:]
    return text


def doctor_tray(env: dict[str, str]) -> dict[str, Any]:
    done = freight(env, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    return dict(checks["tray"])


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[XSession, dict[str, str]]]:
    """One X session with trayer and a session bus for the module's tests."""
    _need_display_tools()
    with x_session(tmp_path_factory.mktemp("x")) as xs, session_bus(xs.env) as env:
        yield xs, env


@pytest.mark.display
def test_freight_start_on_a_display_shows_the_icon_and_its_menu(desktop, tmp_path):
    """Before: `freight start` ran `freight daemon --no-tray`, so a daemon started by the
    host (from the browser, which has a display) had no icon, and nothing said so."""
    xs, base = desktop
    env = _env(base, tmp_path / "freight")
    with started(env) as pid:
        # Detached as before: a session (setsid) of its own, so it outlives the browser.
        assert os.getsid(pid) == pid
        icon = docked_icon(xs, "Freight — idle")
        status = json.loads(freight(env, "status", "--json").stdout)
        assert status["tray"] == {"shown": True, "backend": "appindicator", "menu": True,
                                  "reason": status["tray"]["reason"]}, status
        text = freight(env, "status").stdout
        assert "tray: icon with a menu (appindicator backend)" in text, text
        menu = open_menu(xs, icon, "appindicator")
        assert menu["width"] > 50
        xs.xdotool("key", "Escape")
        check = doctor_tray(env)
        assert check["status"] == "ok" and check["detail"].startswith("icon with a menu"), check


class Host:
    """A real freight-host on pipes, spoken to as the browser does (native messaging)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "freight_host.host", "chrome-extension://test/"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True,  # as a browser's child: a process group of its own
        )
        self.frames: queue.Queue[Any] = queue.Queue()
        decoder = FrameDecoder(max_size=2 * 1024 * 1024)

        def read() -> None:
            assert self.proc.stdout is not None
            while chunk := self.proc.stdout.read1(65536):
                for item in decoder.feed(chunk):
                    self.frames.put(item)

        threading.Thread(target=read, daemon=True).start()
        self._id = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        assert self.proc.stdin is not None
        message = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}}
        self.proc.stdin.write(encode(message, limit=BROWSER_TO_HOST_MAX))
        self.proc.stdin.flush()
        while True:
            reply = self.frames.get(timeout=60)
            if isinstance(reply, dict) and reply.get("id") == self._id:
                return reply

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the browser closed the port
        return self.proc.wait(20)


@pytest.mark.display
def test_the_native_host_starts_a_daemon_that_shows_its_tray_and_outlives_it(desktop, tmp_path):
    """The browser (here: a test playing it) has a display; the host it starts runs
    `freight start`; the daemon shows its icon with a menu, says so through the host, and
    keeps running, icon and all, after the browser has closed the host."""
    xs, base = desktop
    env = _env(base, tmp_path / "freight")
    paths = config.paths_from_env(env)
    host = Host(env)
    pid = 0
    try:
        hello = host.call("host.hello", {"start": True})
        assert "result" in hello, (hello, _log(paths))
        pid = int(json.loads(paths.daemon_file.read_text())["pid"])
        assert os.getsid(pid) == pid and os.getsid(pid) != os.getsid(host.proc.pid)
        docked_icon(xs, "Freight — idle")
        tray = host.call("status")["result"]["tray"]
        assert tray["shown"] and tray["menu"] and tray["backend"] == "appindicator", tray
        assert host.close() == 0
        time.sleep(1.0)  # a daemon tied to the host would be going by now
        os.kill(pid, 0)
        docked_icon(xs, "Freight — idle", timeout=5)
    finally:
        if host.proc.poll() is None:
            host.proc.kill()
        stop = freight(env, "stop")
        if pid and paths.daemon_file.exists():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if pid:
            wait_for(lambda: not _alive(pid), 20, f"the daemon (pid {pid}) to exit")
    assert stop.returncode == 0, stop.stderr


@pytest.mark.display
def test_doctor_says_icon_without_a_menu_for_the_xorg_backend(desktop, tmp_path):
    xs, base = desktop
    env = _env(base, tmp_path / "freight", PYSTRAY_BACKEND="xorg")
    with started(env):
        docked_icon(xs, "Freight — idle")
        status = json.loads(freight(env, "status", "--json").stdout)
        assert status["tray"]["shown"] is True and status["tray"]["menu"] is False, status
        assert status["tray"]["backend"] == "xorg"
        check = doctor_tray(env)
        assert check["status"] == "warn", check
        assert check["detail"].startswith("icon without a menu"), check
        assert "libgirepository1.0-dev" in check["fix"], check
        assert "tray: icon without a menu" in freight(env, "status").stdout


@pytest.mark.display
def test_doctor_on_a_desktop_says_no_icon_when_the_daemon_has_no_display(desktop, tmp_path):
    """Before: doctor probed its own display and said ok while the daemon showed nothing."""
    xs, base = desktop
    with_display = _env(base, tmp_path / "freight")
    headless = {k: v for k, v in with_display.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    with started(headless):
        status = json.loads(freight(headless, "status", "--json").stdout)
        assert status["tray"]["shown"] is False and status["tray"]["backend"] is None, status
        assert "no display" in status["tray"]["reason"]
        check = doctor_tray(with_display)  # the user's terminal on the desktop
        assert check["status"] == "warn", check
        assert check["detail"].startswith("no icon: ") and "display" in check["detail"], check
        assert "freight stop && freight start" in check["fix"], check
        text = freight(with_display, "status").stdout
        assert "tray: no icon:" in text, text
        assert not any(str(w["name"]).startswith("Freight") for w in xs.windows())


@pytest.mark.display
def test_doctor_says_no_icon_when_the_backend_cannot_start(desktop, tmp_path):
    xs, base = desktop
    env = _env(base, tmp_path / "freight", PYSTRAY_BACKEND="no-such-backend")
    with started(env):
        status = json.loads(freight(env, "status", "--json").stdout)
        assert status["tray"]["shown"] is False, status
        check = doctor_tray(env)
        assert check["status"] == "warn", check
        assert check["detail"].startswith("no icon: unknown tray backend 'no-such-backend'")
        assert "unset PYSTRAY_BACKEND" in check["fix"] and "freight.log" in check["fix"], check
        assert not any(str(w["name"]).startswith("Freight") for w in xs.windows())


@pytest.mark.display
def test_doctor_without_a_daemon_probes_itself_and_says_so(desktop, tmp_path):
    _xs, base = desktop
    env = _env(base, tmp_path / "freight", PYSTRAY_BACKEND="xorg")
    check = doctor_tray(env)
    assert "no daemon runs" in check["detail"], check
    assert check["status"] == "warn" and "icon without a menu" in check["detail"], check


def test_no_tray_is_reported_as_asked_for(tmp_path):
    """`--no-tray` stays for those who ask: the daemon says so in `status`."""
    env = _env(dict(os.environ), tmp_path / "freight")
    proc = subprocess.Popen([sys.executable, "-m", "freight", "daemon", "--no-tray"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    paths = config.paths_from_env(env)
    try:
        wait_for(paths.daemon_file.exists, 20, "daemon.json")
        time.sleep(0.2)
        status = json.loads(freight(env, "status", "--json").stdout)
        assert status["tray"] == {"shown": False, "backend": None, "menu": False,
                                  "reason": "--no-tray"}, status
        check = doctor_tray(env)
        assert check["status"] == "warn" and check["detail"] == "no icon: --no-tray", check
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
