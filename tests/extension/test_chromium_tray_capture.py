"""The tray's Capture item and the browser: one setting. A real daemon (the same ``serve`` that
``freight daemon`` runs, here in this process so that the tray's bridge can be called as the
tray calls it), the real native host and the real extension in Chromium."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import Browser, daemon_env, wait_for
from freight import config, secrets
from freight.daemon.app import serve
from freight.daemon.instance import InstanceLock
from freight.daemon.tray_bridge import TrayBridge
from test_chromium_daemon import click, completed, freight, install_into, sha256, worker_rule

pytestmark = pytest.mark.browser


class InProcessDaemon:
    """``freight.daemon.app.serve`` on a loop thread, with the tray's bridge built the way
    ``_run_with_tray`` builds it (no icon: only the bridge's public calls are used)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.paths = config.paths_from_env(env).ensure()
        # As run_daemon does: clients take a daemon.json whose lock nobody holds for stale.
        self.lock = InstanceLock(self.paths.lock_file)
        assert self.lock.acquire()
        self.ready = threading.Event()
        self.parts: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name="test-daemon", daemon=True)
        self.thread.start()
        assert self.ready.wait(30) and "bridge" in self.parts, self.parts

    def _run(self) -> None:
        def on_ready(handler: Any) -> None:
            loop = asyncio.get_running_loop()
            bridge = TrayBridge(handler, loop)
            bridge.start()
            self.parts.update(handler=handler, bridge=bridge, loop=loop)
            self.ready.set()

        try:
            self.parts["code"] = asyncio.run(serve(self.paths, port=0, on_ready=on_ready))
        finally:
            self.ready.set()

    @property
    def bridge(self) -> Any:
        return self.parts["bridge"]

    def stop(self) -> None:
        if "loop" in self.parts and self.thread.is_alive():
            self.parts["loop"].call_soon_threadsafe(self.parts["handler"].request_stop)
        self.thread.join(20)
        self.lock.release()


@pytest.fixture
def tray_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[InProcessDaemon, dict[str, str]]]:
    env = daemon_env(tmp_path)
    # Secrets in 0600 files under FREIGHT_HOME, for this process and the host alike: never
    # the keyring of whoever runs the tests.
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    for name in ("HOME", "FREIGHT_HOME", "FREIGHT_DOWNLOAD_DIR", "XDG_CONFIG_HOME",
                 "XDG_DATA_HOME", "PYTHON_KEYRING_BACKEND"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("DISPLAY", raising=False)
    secrets.forget_cache()
    daemon = InProcessDaemon(env)
    try:
        yield daemon, env
    finally:
        daemon.stop()
        secrets.forget_cache()
    assert daemon.parts.get("code") == 0


def test_the_tray_capture_toggle_is_the_setting_the_extension_obeys(
    make_browser, tray_daemon, site
) -> None:
    daemon, env = tray_daemon
    b: Browser = make_browser(install_into(env), extra_env=env)
    host_log = Path(env["FREIGHT_HOME"]) / "logs" / "freight-host.log"
    try:
        wait_for(lambda: b.state()["status"]["state"] == "connected", timeout=30,
                 what="the extension to reach the daemon")
    except AssertionError as e:
        raise AssertionError(f"{e}: {b.state()['status']}; host log: "
                             f"{host_log.read_text() if host_log.exists() else '-'}") from None
    kept = site.add("tray-off.bin", 200_000)
    taken = site.add("tray-on.bin", 200_000)

    daemon.bridge.set_capture(False)  # what the tray's "Capture from browser → Off" calls
    wait_for(lambda: freight(env, "settings", "capture").strip() == "false",
             what="the tray's choice in `freight settings`")
    wait_for(lambda: daemon.bridge.snapshot().capture is False, what="the tray to show it")
    worker_rule(b, "enabled", False)
    click(b, site, "a[href='/files/tray-off.bin']")
    wait_for(lambda: (b.downloads / "tray-off.bin").exists()
             and sha256(b.downloads / "tray-off.bin") == kept, what="the browser's download")
    assert b.recent()[0]["reason"] == "capture is off"
    assert "tray-off.bin" not in freight(env, "ls")  # the daemon never had it

    daemon.bridge.set_capture(True)
    worker_rule(b, "enabled", True)
    click(b, site, "a[href='/files/tray-on.bin']")
    assert sha256(Path(completed(b, "tray-on.bin")["path"])) == taken
    assert not (b.downloads / "tray-on.bin").exists()
