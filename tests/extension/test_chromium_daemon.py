"""End to end: Chromium + the extension + the real native host (`freight install`) + the real
daemon (`freight daemon`), all in a throwaway FREIGHT_HOME and HOME, against a local site."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    EXTENSION_ID,
    ROOT,
    Browser,
    assert_browser_wrote_nothing,
    click,
    completed,
    daemon_downloads,
    wait_for,
)

pytestmark = pytest.mark.browser

FREIGHT = Path(sys.executable).parent / "freight"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    e = {**os.environ, "HOME": str(home), "FREIGHT_HOME": str(tmp_path / "freight-home"),
         "FREIGHT_DOWNLOAD_DIR": str(tmp_path / "daemon-downloads"),
         "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local/share")}
    e.pop("DISPLAY", None)  # no tray in these tests
    return e


@pytest.fixture
def daemon(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    if not FREIGHT.exists():
        pytest.fail("the freight console script is missing: pip install -e .")
    log = open(tmp_path / "daemon.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(FREIGHT), "daemon", "--no-tray", "--port", "0"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    state = Path(env["FREIGHT_HOME"]) / "state" / "daemon.json"
    try:
        wait_for(lambda: state.exists() or proc.poll() is not None, timeout=30,
                 what="the daemon to write daemon.json")
        assert proc.poll() is None, (tmp_path / "daemon.out").read_text()
        yield proc
    finally:
        subprocess.run([str(FREIGHT), "stop"], env=env, timeout=30, capture_output=True)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def install_into(env: dict[str, str]) -> Callable[[Path], None]:
    def before_launch(udd: Path) -> None:
        res = subprocess.run(
            [str(FREIGHT), "install", "--browser", "chromium", "--user-data-dir", str(udd),
             "--no-autostart"], env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        manifest = udd / "NativeMessagingHosts" / "dev.freight.host.json"
        assert f"chrome-extension://{EXTENSION_ID}/" in json.loads(manifest.read_text())[
            "allowed_origins"]
    return before_launch


@pytest.fixture
def connected(make_browser, env, daemon) -> Browser:
    b: Browser = make_browser(install_into(env), extra_env=env)
    wait_for(lambda: b.state()["status"]["state"] == "connected", timeout=30,
             what="the extension to reach the daemon")
    return b


def test_click_goes_to_the_daemon_and_the_browser_writes_nothing(connected, site) -> None:
    b = connected
    digest = site.add("big.iso", 3 * 1024 * 1024)
    click(b, site, "#f0")
    d = completed(b, "big.iso")
    assert sha256(Path(d["path"])) == digest
    assert_browser_wrote_nothing(b)
    assert b.recent()[0]["to"] == "freight"


def test_capture_still_works_after_the_worker_was_stopped(connected, site) -> None:
    b = connected
    digest = site.add("after-stop.bin", 1024 * 1024)
    b.stop_workers()
    click(b, site, "#f0")
    d = completed(b, "after-stop.bin")
    assert sha256(Path(d["path"])) == digest
    assert_browser_wrote_nothing(b)
    assert "running" in b.worker_statuses[b.worker_statuses.index("stopped"):]


def test_cookies_reach_the_server(connected, site) -> None:
    b = connected
    digest = site.add("secret.bin", 500_000)
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")  # sets the HttpOnly session cookie
    page.click("#auth")
    d = completed(b, "secret.bin")
    assert sha256(Path(d["path"])) == digest  # the server answers 403 without the cookie
    assert_browser_wrote_nothing(b)


def freight(env: dict[str, str], *args: str) -> str:
    """The real CLI against this test's daemon; its stdout."""
    res = subprocess.run([str(FREIGHT), *args], env=env, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def worker_rule(b: Browser, rule: str, value: Any) -> None:
    """Wait until the worker, as it runs (never reloaded), holds the daemon's rule."""
    wait_for(lambda: b.state()["rules"][rule] == value
             and b.state()["rulesInfo"]["source"] == "daemon",
             what=f"the worker to follow {rule} = {value!r}")


def stays_with_the_browser(b: Browser, name: str, digest: str) -> None:
    try:
        wait_for(lambda: (b.downloads / name).exists() and sha256(b.downloads / name) == digest,
                 what=f"the browser's own download of {name}")
    except AssertionError as e:
        raise AssertionError(f"{e}; decisions {b.recent()}; the browser's downloads "
                             f"{b.browser_downloads()}; files {b.downloaded()}") from None
    assert [d for d in daemon_downloads(b) if d["name"] == name] == []
    assert [r["to"] for r in b.recent() if r["name"] == name] == ["browser"], b.recent()


def test_freight_settings_change_what_the_running_extension_captures(
    connected, env, site
) -> None:
    b = connected
    off = site.add("while-off.bin", 300_000)
    on = site.add("while-on.bin", 300_000)
    small = site.add("one-mebibyte.bin", 1024 * 1024)
    assert b.state()["rules"]["enabled"] is True

    assert freight(env, "settings", "capture", "off").strip() == "capture = false"
    worker_rule(b, "enabled", False)
    click(b, site, "a[href='/files/while-off.bin']")
    stays_with_the_browser(b, "while-off.bin", off)
    assert b.recent()[0]["reason"] == "capture is off"

    freight(env, "settings", "capture", "on")
    worker_rule(b, "enabled", True)
    click(b, site, "a[href='/files/while-on.bin']")
    assert sha256(Path(completed(b, "while-on.bin")["path"])) == on
    assert not (b.downloads / "while-on.bin").exists()

    freight(env, "settings", "capture_min_size", "2000000")
    worker_rule(b, "minSize", 2_000_000)
    click(b, site, "a[href='/files/one-mebibyte.bin']")
    stays_with_the_browser(b, "one-mebibyte.bin", small)
    assert b.recent()[0]["reason"] == "smaller than 2000000 bytes"


def test_options_page_and_popup_show_and_change_the_daemons_rules(
    connected, env, daemon
) -> None:
    b = connected
    freight(env, "settings", "capture_never_sites", "example.org, *.bank.test")
    freight(env, "settings", "capture_min_size", "1048576")
    page = b.ctx.new_page()
    page.goto(f"chrome-extension://{EXTENSION_ID}/options.html")
    page.wait_for_selector("#source[data-source=daemon]")
    assert page.input_value("#minSize") == "1 MiB"
    assert page.input_value("#neverSites") == "example.org\n*.bank.test"
    assert "shared by every browser" in page.inner_text("#source")

    freight(env, "settings", "capture_never_types", "exe")  # while the page is open
    wait_for(lambda: page.input_value("#neverTypes") == "exe", what="the page to follow")

    page.fill("#minSize", "5 MiB")
    page.fill("#alwaysTypes", "iso video/*")
    page.click("#save")
    page.wait_for_selector("#msg.ok")
    assert freight(env, "settings", "capture_min_size").strip() == str(5 * 1024 * 1024)
    assert json.loads(freight(env, "settings", "capture_always_types")) == ["iso", "video/*"]
    assert json.loads(freight(env, "settings", "capture_never_sites")) == [
        "example.org", "*.bank.test"]  # kept as they were
    b.screenshot(page, "options-daemon-rules.png")

    popup = b.ctx.new_page()
    popup.goto(f"chrome-extension://{EXTENSION_ID}/popup.html")
    wait_for(lambda: popup.is_checked("#capture"), what="the popup's toggle to show capture on")
    popup.click(".switch")  # the popup's toggle
    wait_for(lambda: freight(env, "settings", "capture").strip() == "false",
             what="the popup's toggle to reach the daemon")
    wait_for(lambda: not page.is_checked("#enabled"), what="the options page to follow")

    freight(env, "stop")  # the daemon goes away: the page says its rules are the last known
    page.wait_for_selector("#source[data-source=stored]", timeout=30_000)
    assert "not reachable" in page.inner_text("#source")
    assert page.input_value("#minSize") == "5 MiB" and not page.is_checked("#enabled")
    daemon.wait(timeout=15)


def test_popup_shows_live_progress(connected, site) -> None:
    b = connected
    digest = site.add("slow-movie.mkv", 3 * 1024 * 1024)  # paced by the site: ~3 s
    popup = b.ctx.new_page()
    popup.set_viewport_size({"width": 460, "height": 300})
    popup.goto(f"chrome-extension://{EXTENSION_ID}/popup.html")
    click(b, site, "#f0")
    popup.wait_for_selector(".dl .pill.active", timeout=20_000)
    # (wait_for_function would eval() a string, which the extension's CSP forbids)
    width = "parseFloat(document.querySelector('.dl .bar > div').style.width)"
    wait_for(lambda: popup.evaluate(width) > 5, what="the progress bar to move")
    assert popup.evaluate(width) < 100
    b.screenshot(popup, "popup-progress.png")
    popup.wait_for_selector(".dl .pill.completed", timeout=60_000)
    assert "Open" in popup.inner_text(".dl .actions")
    b.screenshot(popup, "popup-completed.png")
    d = completed(b, "slow-movie.mkv")
    assert sha256(Path(d["path"])) == digest


def test_daemon_unavailable_the_browser_downloads_it(make_browser, env, site) -> None:
    # The launcher `freight install` writes carries this FREIGHT_HOME, so the host starts the
    # daemon there. A damaged database makes the daemon refuse to start (it leaves the file
    # untouched); `freight start` fails and the host answers -32010.
    install = install_into(env)

    def install_then_damage(udd: Path) -> None:
        install(udd)
        (Path(env["FREIGHT_HOME"]) / "freight.db").write_bytes(b"not a database " * 100)

    try:
        b: Browser = make_browser(install_then_damage, extra_env=env)
        digest = site.add("fallback.bin", 400_000)
        click(b, site, "#f0")
        wait_for(lambda: b.recent(), timeout=60, what=f"a decision ({b.state()['status']})")
        assert b.recent()[0]["to"] == "browser", b.recent()

        def finished() -> list[dict[str, Any]]:
            items = b.browser_downloads()
            return items if items and all(i["state"] != "in_progress" for i in items) else []
        try:
            items = wait_for(finished, timeout=90, what="the browser's own download to end")
        except AssertionError as e:
            raise AssertionError(f"{e}; decisions {b.recent()}; the browser's downloads "
                                 f"{b.browser_downloads()}; files {b.downloaded()}") from None
        assert len(items) == 1, items
        assert items[0]["state"] == "complete", items
        assert Path(items[0]["filename"]) == b.downloads / "fallback.bin", items
        assert sha256(b.downloads / "fallback.bin") == digest
        host_log = (Path(env["FREIGHT_HOME"]) / "logs" / "freight-host.log").read_text()
        assert "`freight start` failed" in host_log, host_log
    finally:  # should the daemon have started after all, it must not outlive the test
        subprocess.run([str(FREIGHT), "stop"], env=env, timeout=30, capture_output=True)


def test_ids_match_what_freight_install_reads() -> None:
    assert (ROOT / "extension" / "EXTENSION_ID").read_text().strip() == EXTENSION_ID
    ids = json.loads((ROOT / "extension" / "ids.json").read_text())
    assert ids["chromium"] == EXTENSION_ID


def test_a_worker_woken_by_a_download_obeys_a_change_made_while_it_slept(
    connected, env, site
) -> None:
    b = connected
    digest = site.add("asleep.bin", 300_000)
    worker_rule(b, "enabled", True)
    b.stop_workers()  # its port to the host closes: no settings.changed can reach it now
    freight(env, "settings", "capture", "off")
    click(b, site, "a[href='/files/asleep.bin']")  # wakes it, with capture on in storage
    stays_with_the_browser(b, "asleep.bin", digest)
    assert b.recent()[0]["reason"] == "capture is off"
    assert "running" in b.worker_statuses[b.worker_statuses.index("stopped"):]
