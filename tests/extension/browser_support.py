"""Helpers and fixtures for the extension's browser tests: a local web site and a real Chromium.

Browser tests fail when CI=true and the browser is missing (CI installs it); elsewhere they skip
with the reason. Screenshots go to test-output/ (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ext_site import Site  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extension"
EXTENSION_ID = (EXTENSION / "EXTENSION_ID").read_text().strip()
OUTPUT = ROOT / "test-output"
CHROMIUM = "/usr/bin/chromium"
HOST_NAME = "dev.freight.host"
#: rules.js rule → the daemon's setting (extension/js/rules.js RULE_SETTINGS)
RULE_SETTINGS = {"enabled": "capture", "minSize": "capture_min_size",
                 "alwaysTypes": "capture_always_types", "neverTypes": "capture_never_types",
                 "neverSites": "capture_never_sites", "notify": "notify"}


def need(condition: bool, what: str) -> None:
    """Fail under CI, skip elsewhere, when something a browser test needs is missing."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI must provide it: see .ci/run)")
    pytest.skip(what)


def wait_for(fn: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site().start()
    yield s
    s.stop()


@dataclass
class Browser:
    ctx: Any
    udd: Path
    downloads: Path
    _ext_page: Any = None
    _cdp: Any = None
    worker_statuses: list[str] = field(default_factory=list)

    @property
    def worker(self) -> Any:
        for sw in self.ctx.service_workers:
            if EXTENSION_ID in sw.url:
                return sw
        return self.ctx.wait_for_event("serviceworker", timeout=10_000)

    def ev(self, script: str) -> Any:
        """Evaluate in the service worker as first started (not after stop_workers())."""
        return self.worker.evaluate(script)

    def page_ev(self, script: str) -> Any:
        """Evaluate in an extension page; it works whether or not the worker was restarted."""
        if self._ext_page is None or self._ext_page.is_closed():
            self._ext_page = self.ctx.new_page()
            self._ext_page.goto(f"chrome-extension://{EXTENSION_ID}/options.html")
        return self._ext_page.evaluate(script)

    def downloaded(self) -> list[Path]:
        return sorted(p for p in self.downloads.iterdir())

    def browser_downloads(self) -> list[dict[str, Any]]:
        return self.page_ev("chrome.downloads.search({})")

    def state(self) -> dict[str, Any]:
        res = self.page_ev("chrome.runtime.sendMessage({type: 'state'})")
        assert res["ok"], res
        return res["result"]

    def recent(self) -> list[dict[str, Any]]:
        return self.state()["recent"]

    def set_stored_rules(self, rules: dict[str, Any]) -> None:
        """Make `rules` (rules.js names) the last ones a daemon sent, as the worker keeps them
        in storage.local, for tests without a daemon: the worker follows them until a daemon
        answers. With a daemon, rules change only through its settings."""
        settings = {RULE_SETTINGS[name]: value for name, value in rules.items()}
        stored = json.dumps({"settings": settings, "at": 1})
        self.page_ev(f"chrome.storage.local.set({{daemonRules: {stored}}})")
        wait_for(lambda: self.state()["rules"] == {**self.state()["rules"], **rules},
                 what="rules to reach the worker")

    def stop_workers(self) -> None:
        """Kill the service worker as the browser does when idle (CDP ServiceWorker domain)."""
        if self._ext_page is not None:
            self._ext_page.close()  # an open extension page would keep the worker busy
            self._ext_page = None
        page = self.ctx.pages[0] if self.ctx.pages else self.ctx.new_page()
        cdp = self.ctx.new_cdp_session(page)
        statuses = self.worker_statuses
        cdp.on("ServiceWorker.workerVersionUpdated", lambda ev: statuses.extend(
            v["runningStatus"] for v in ev["versions"] if EXTENSION_ID in v["scriptURL"]))
        cdp.send("ServiceWorker.enable")
        cdp.send("ServiceWorker.stopAllWorkers")
        # Sync Playwright delivers CDP events only while it runs: wait with its own timer.
        for _ in range(100):
            if statuses and statuses[-1] == "stopped":
                break
            page.wait_for_timeout(100)
        assert statuses and statuses[-1] == "stopped", statuses
        self._cdp = cdp  # keep listening: the test may check that the worker ran again

    def screenshot(self, page: Any, name: str) -> Path:
        OUTPUT.mkdir(exist_ok=True)
        path = OUTPUT / name
        page.screenshot(path=str(path))
        return path


@pytest.fixture
def playwright_sync() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright Python package is not installed (test extras)")
    need(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture
def make_browser(
    playwright_sync: Any, tmp_path: Path
) -> Iterator[Callable[..., Browser]]:
    """Start Chromium with the unpacked extension (the source tree's, or `extension`);
    `before_launch(udd)` may add host manifests."""
    contexts: list[Any] = []

    def start(before_launch: Callable[[Path], None] | None = None,
              extra_env: dict[str, str] | None = None, extension: Path = EXTENSION) -> Browser:
        udd = tmp_path / f"profile{len(contexts)}"
        downloads = tmp_path / f"browser-downloads{len(contexts)}"
        (udd / "Default").mkdir(parents=True)
        downloads.mkdir()
        prefs = {"download": {"default_directory": str(downloads), "prompt_for_download": False,
                              "directory_upgrade": True}}
        (udd / "Default" / "Preferences").write_text(json.dumps(prefs))
        if before_launch:
            before_launch(udd)
        env = {**os.environ, **(extra_env or {})}
        ctx = playwright_sync.chromium.launch_persistent_context(
            str(udd), executable_path=CHROMIUM, headless=True, env=env,
            args=[f"--disable-extensions-except={extension}", f"--load-extension={extension}"],
        )
        contexts.append(ctx)
        # Playwright takes over downloads by default; give them back to the browser so that
        # downloads.onDeterminingFilename fires as it does for a user.
        assert ctx.browser is not None
        ctx.browser.new_browser_cdp_session().send(
            "Browser.setDownloadBehavior", {"behavior": "default"}
        )
        b = Browser(ctx, udd, downloads)
        b.ev("freight.ready.then(() => true)")
        return b

    yield start
    for ctx in contexts:
        ctx.close()


def host_manifest(udd: Path, host_path: str) -> Path:
    """Register a native host for this profile only (<udd>/NativeMessagingHosts/)."""
    folder = udd / "NativeMessagingHosts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{HOST_NAME}.json"
    path.write_text(json.dumps({
        "name": HOST_NAME, "description": "Freight", "path": host_path, "type": "stdio",
        "allowed_origins": [f"chrome-extension://{EXTENSION_ID}/"],
    }))
    return path


def which_freight() -> str | None:
    exe = Path(sys.executable).parent / "freight"
    return str(exe) if exe.exists() else shutil.which("freight")


def rpc_via_page(b: Browser, method: str, params: dict[str, Any] | None = None) -> Any:
    """Ask the daemon through the extension (page → background → host → daemon)."""
    res = b.page_ev(
        f"chrome.runtime.sendMessage({{type: 'rpc', method: {json.dumps(method)}, "
        f"params: {json.dumps(params or {})}}})"
    )
    assert res["ok"], res
    return res["result"]


# --- the real daemon and host (shared by the end-to-end tests) --------------------------------


def daemon_downloads(b: Browser) -> list[dict[str, Any]]:
    return rpc_via_page(b, "list")["downloads"]


def completed(b: Browser, name: str) -> dict[str, Any]:
    """The daemon's download `name` once it ended; fails unless it completed."""
    def find() -> dict[str, Any] | None:
        for d in daemon_downloads(b):
            if d["name"] == name and d["state"] in ("completed", "failed", "needs_refresh"):
                return d
        return None
    d = wait_for(find, timeout=60, what=f"the daemon to finish {name}")
    assert d["state"] == "completed", d
    return d


def ended_completed(b: Browser, download_id: int) -> dict[str, Any]:
    """The download's row once it ended (60 s at most), asserted completed."""
    d = wait_for(lambda: (x := rpc_via_page(b, "get", {"id": download_id}))["state"] in (
        "completed", "failed") and x, timeout=60, what=f"download #{download_id} to end")
    assert d["state"] == "completed", d
    return dict(d)


def click(b: Browser, site: Any, selector: str) -> None:
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    page.click(selector)


def assert_browser_wrote_nothing(b: Browser) -> None:
    assert b.downloaded() == []
    assert b.browser_downloads() == []


FREIGHT = Path(sys.executable).parent / "freight"


def sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def daemon_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose HOME, FREIGHT_HOME and XDG folders all live under tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    e = {**os.environ, "HOME": str(home), "FREIGHT_HOME": str(tmp_path / "freight-home"),
         "FREIGHT_DOWNLOAD_DIR": str(tmp_path / "daemon-downloads"),
         "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local/share")}
    e.pop("DISPLAY", None)  # no tray in these tests
    return e


class Daemon:
    """`freight daemon --port 0` in a throwaway FREIGHT_HOME, and a client to ask it directly
    (`freight`: the console script of another install than the tests' own)."""

    def __init__(self, env: dict[str, str], log: Path, freight: Path = FREIGHT) -> None:
        import subprocess

        if not freight.exists():
            pytest.fail(f"the freight console script is missing ({freight}): pip install -e .")
        self.env = env
        self.freight = freight
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(freight), "daemon", "--no-tray", "--port", "0"], env=env,
            stdout=self._log, stderr=subprocess.STDOUT)
        state = Path(env["FREIGHT_HOME"]) / "state" / "daemon.json"
        wait_for(lambda: state.exists() or self.proc.poll() is not None, timeout=30,
                 what="the daemon to write daemon.json")
        assert self.proc.poll() is None, log.read_text()

    def cli(self, *args: str) -> str:
        """Run `freight ARGS` against this daemon (its own HOME and FREIGHT_HOME); stdout."""
        import subprocess

        res = subprocess.run([str(self.freight), *args], env=self.env, capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    def downloads(self) -> list[dict[str, Any]]:
        """The daemon's list, asked with the CLI (not through the browser under test)."""
        out = json.loads(self.cli("ls", "--json"))
        return list(out["downloads"] if isinstance(out, dict) else out)

    def stop(self) -> None:
        import subprocess

        subprocess.run([str(self.freight), "stop"], env=self.env, timeout=30,
                       capture_output=True)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def freight_env(tmp_path: Path) -> dict[str, str]:
    return daemon_env(tmp_path)


@pytest.fixture
def freight_daemon(freight_env: dict[str, str], tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(freight_env, tmp_path / "daemon.out")
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def start_connected(make_browser: Callable[..., Browser], tmp_path: Path) -> Iterator[
        Callable[[], tuple[Browser, Daemon]]]:
    """start_connected() → a browser connected through the real host to a real daemon whose
    FREIGHT_HOME may have been filled before (daemon_env(tmp_path))."""
    daemons: list[Daemon] = []

    def go() -> tuple[Browser, Daemon]:
        env = daemon_env(tmp_path)
        d = Daemon(env, tmp_path / "daemon.out")
        daemons.append(d)
        b = make_browser(
            lambda udd: install_host(env, "--browser", "chromium", "--user-data-dir", str(udd)),
            extra_env=env)
        wait_for(lambda: b.state()["status"]["state"] == "connected", timeout=30,
                 what="the extension to reach the daemon")
        return b, d

    yield go
    for d in daemons:
        d.stop()


def install_host(env: dict[str, str], *args: str) -> str:
    """`freight install ARGS --no-autostart` (the real registration); returns its output."""
    import subprocess

    res = subprocess.run([str(FREIGHT), "install", *args, "--no-autostart"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


# --- Firefox over WebDriver BiDi (no geckodriver exists offline) ------------------------------

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
GECKO_ID = "freight@freight.dev"
GECKO_UUID = "3d4c1a7e-5f0b-4b8e-9c51-6a2f0e7d9b10"  # a fixed moz-extension:// origin


class Bidi:
    """A minimal WebDriver BiDi client: one command at a time, events kept aside."""

    def __init__(self, ws: Any) -> None:
        import itertools

        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def cmd(self, method: str, **params: Any) -> Any:
        id_ = next(self.ids)
        self.ws.send(json.dumps({"id": id_, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == id_:
                if msg.get("type") == "error":
                    raise AssertionError(f"{method}: {msg.get('error')}: {msg.get('message')}")
                return msg["result"]
            self.events.append(msg)


def firefox_profile(profile: Path, downloads: Path, extra: dict[str, Any] | None = None) -> None:
    """user.js: downloads go to `downloads` without asking; a fixed moz-extension UUID."""
    profile.mkdir(parents=True, exist_ok=True)
    prefs = {
        "browser.download.folderList": 2,
        "browser.download.dir": str(downloads),
        "browser.download.useDownloadDir": True,
        "browser.download.always_ask_before_handling_new_types": False,
        "browser.download.alwaysOpenPanel": False,
        "extensions.webextensions.uuids": json.dumps({GECKO_ID: GECKO_UUID}),
        "browser.shell.checkDefaultBrowser": False,
        "network.proxy.type": 0,
        **(extra or {}),
    }
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))


@pytest.fixture
def start_firefox(tmp_path: Path) -> Iterator[Callable[..., Bidi]]:
    """Start firefox-esr headless with a BiDi session: start(profile, env) → Bidi."""
    import socket
    import subprocess

    need(FIREFOX is not None, "firefox-esr is missing (apt-get install firefox-esr)")
    running: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(profile: Path, env: dict[str, str]) -> Bidi:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        log = open(tmp_path / f"firefox{len(running)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(FIREFOX), "--headless", f"--remote-debugging-port={port}", "--profile",
             str(profile), "--no-remote", "about:blank"],
            env={**env, "MOZ_HEADLESS": "1"}, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        try:
            wait_for(ready, timeout=30, what="Firefox's remote agent")
            from websockets.sync.client import connect

            # (the context-manager form: newer websockets warn about a bare connect())
            ws = connect(f"ws://127.0.0.1:{port}/session", proxy=None, max_size=None,
                         open_timeout=20).__enter__()
        except BaseException:
            proc.kill()
            log.close()
            raise
        running.append((proc, ws))
        log.close()
        bidi = Bidi(ws)
        bidi.cmd("session.new", capabilities={})
        return bidi

    yield start
    for proc, ws in running:
        ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
