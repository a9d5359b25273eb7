"""The popup tells the truth, in real Chromium with the real extension, host and daemon: a port
held by another program is named in a banner with the command that fixes it (never "No
downloads yet"), and once that command has run, the popup shows the daemon's counts.

With FREIGHT_SCREENSHOTS set, the two popups are also saved as docs/img/popup-daemon-down.png
and docs/img/popup-counts.png (the pictures docs/HOST.md shows).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    EXTENSION_ID,
    FREIGHT,
    ROOT,
    Browser,
    daemon_env,
    install_host,
    rpc_via_page,
    wait_for,
)
from freight import config
from freight.store import Store

pytestmark = pytest.mark.browser

def freight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(FREIGHT), *args], env=env, capture_output=True, text=True,
                            timeout=60)
    return result


def keep(b: Browser, page: Any, name: str) -> None:
    shot = b.screenshot(page, name)
    if os.environ.get("FREIGHT_SCREENSHOTS"):
        (ROOT / "docs" / "img").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "img" / name)


def count(popup: Any, state: str) -> str:
    return str(popup.inner_text(f"#summary .count[data-state={state}] b"))


def test_port_taken_banner_then_counts_after_the_fix(
        make_browser: Any, site: Any, tmp_path: Path,
        port_holder: tuple[subprocess.Popen[str], int]) -> None:
    proc, taken = port_holder
    env = daemon_env(tmp_path)
    paths = config.paths_from_env({"FREIGHT_HOME": env["FREIGHT_HOME"]}).ensure()
    store = Store(paths.database)
    store.set_settings({"port": taken})
    store.close()
    try:
        b: Browser = make_browser(
            lambda udd: install_host(env, "--browser", "chromium", "--user-data-dir", str(udd)),
            extra_env=env)
        # The worker shook hands at start: the host ran `freight start`, which failed.
        status = wait_for(lambda: (s := b.state()["status"])["state"] == "daemon_unavailable"
                          and s, timeout=60, what="the extension to learn the daemon is down")
        assert status["cause"] == "port_taken" and status["port"] == taken, status

        popup = b.ctx.new_page()
        popup.set_viewport_size({"width": 460, "height": 260})
        popup.goto(f"chrome-extension://{EXTENSION_ID}/popup.html")
        popup.wait_for_selector("#banner:not([hidden])", timeout=30_000)
        wait_for(lambda: "held by" in popup.inner_text("#banner-reason"), timeout=30,
                 what="the banner to name the cause")
        reason = popup.inner_text("#banner-reason")
        assert f"port {taken}" in reason and f"(pid {proc.pid})" in reason, reason
        fix = popup.inner_text("#banner-cmd").strip()
        assert fix.startswith("freight start --port "), fix
        assert not popup.is_visible("#empty")
        assert "No downloads yet" not in popup.inner_text("body")
        assert popup.inner_text("#summary") == "not running"
        keep(b, popup, "popup-daemon-down.png")

        # The user runs the command the popup gave, and presses "Try again".
        fixed = freight(env, *shlex.split(fix)[1:])
        assert fixed.returncode == 0, fixed.stderr
        # (the worker's own retry may be quicker: a click then only asks again)
        popup.evaluate("document.getElementById('retry-connect').click()")
        popup.wait_for_selector("#banner", state="hidden", timeout=30_000)
        assert popup.inner_text("#summary") == "no downloads"

        # One running, two waiting, one paused: slow enough that they stay so.
        for name, value in (("max_active", "1"), ("global_limit", "32768"),
                            ("connections", "1")):
            assert freight(env, "settings", name, value).returncode == 0
        names = [f"count-{i}.bin" for i in range(4)]
        for name in names:
            site.add(name, 8 * 1024 * 1024)
            added = freight(env, "add", f"{site.base}/files/{name}")
            assert added.returncode == 0, added.stderr
        # (a queued download has no name yet: it is found by its URL)
        ids = {d["url"]: d["id"] for d in rpc_via_page(b, "list")["downloads"]}
        rpc_via_page(b, "pause", {"id": ids[f"{site.base}/files/{names[-1]}"]})
        wait_for(lambda: (count(popup, "active"), count(popup, "queued"),
                          count(popup, "paused")) == ("1", "2", "1"), timeout=30,
                 what="the popup to count 1 active, 2 queued, 1 paused")
        assert popup.is_hidden("#banner") and not popup.is_visible("#empty")
        popup.set_viewport_size({"width": 460, "height": 480})  # room for all four
        keep(b, popup, "popup-counts.png")
        # The port the fix named is the one kept: the next start uses it.
        assert freight(env, "stop").returncode == 0
        assert freight(env, "start").returncode == 0
        assert f":{shlex.split(fix)[-1]}/" in freight(env, "status").stdout
    finally:
        freight(env, "stop")
