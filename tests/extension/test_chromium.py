"""The extension in a real Chromium (Debian's, driven by Playwright).

Without the native host installed every download must stay with the browser (never lost);
with the real host and daemon (test_chromium_daemon.py) they go to Freight.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from browser_support import EXTENSION, EXTENSION_ID, Browser, wait_for

pytestmark = pytest.mark.browser


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fixed_key_gives_the_recorded_id() -> None:
    manifest = json.loads((EXTENSION / "manifest.json").read_text())
    der = base64.b64decode(manifest["key"])
    digest = hashlib.sha256(der).hexdigest()[:32]
    computed = "".join(chr(ord("a") + int(c, 16)) for c in digest)
    assert computed == EXTENSION_ID
    ids = json.loads((EXTENSION / "ids.json").read_text())
    assert ids == {"chromium": EXTENSION_ID, "gecko": "freight@freight.dev"}
    # One manifest serves both browsers: Firefox reads the gecko id and background.scripts,
    # Chromium (121+) the key and background.service_worker. Firefox refuses symlinked files
    # in an unpacked add-on, so a separate firefox/ folder would need copies of every file.
    assert manifest["browser_specific_settings"]["gecko"]["id"] == ids["gecko"]
    assert manifest["background"]["scripts"] == [manifest["background"]["service_worker"]]


def test_every_file_the_manifests_name_exists() -> None:
    m = json.loads((EXTENSION / "manifest.json").read_text())
    named = [*m["icons"].values(), *m["action"]["default_icon"].values(),
             m["action"]["default_popup"], m["options_ui"]["page"], *m["background"]["scripts"],
             m["background"]["service_worker"], "picker.html"]
    for rel in named:
        path = EXTENSION / rel
        assert path.is_file() and not path.is_symlink(), f"{rel} missing"


def test_service_worker_starts_with_the_fixed_id(make_browser) -> None:
    b: Browser = make_browser()
    assert b.worker.url == f"chrome-extension://{EXTENSION_ID}/js/background.js"
    assert b.ev("chrome.runtime.id") == EXTENSION_ID
    # No host is registered in this profile: the worker says so instead of hanging.
    status = wait_for(lambda: b.ev("freight.rpc.status")["state"] == "host_unavailable"
                      and b.ev("freight.rpc.status"), what="host_unavailable")
    assert "not found" in status["reason"]


def test_popup_without_host_shows_what_to_do(make_browser) -> None:
    b: Browser = make_browser()
    page = b.ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"chrome-extension://{EXTENSION_ID}/popup.html")
    page.wait_for_selector("#banner:not([hidden])")
    assert "freight install" in page.inner_text("#banner")
    b.screenshot(page, "popup-no-host.png")
    assert errors == []


def test_without_host_the_browser_downloads_the_file_itself(make_browser, site) -> None:
    digest = site.add("report.bin", 300_000)
    b: Browser = make_browser()
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    page.click("#f0")
    path = wait_for(lambda: [p for p in b.downloaded() if p.name == "report.bin"],
                    what="the browser's own download")[0]
    wait_for(lambda: b.browser_downloads() and b.browser_downloads()[0]["state"] == "complete",
             what="the browser download to complete")
    assert sha256(path) == digest
    assert len(b.browser_downloads()) == 1  # exactly once: not re-issued on top
    assert [r["to"] for r in b.recent()] == ["browser"]
    assert "not installed" in b.recent()[0]["reason"]


def test_last_known_rules_survive_a_worker_restart_without_a_daemon(make_browser, site) -> None:
    site.add("a.bin", 10_000)
    b: Browser = make_browser()
    b.set_stored_rules({"enabled": False})
    assert b.ev("freight.rules().enabled") is False
    assert b.ev("freight.rulesInfo()")["source"] == "stored"
    b.stop_workers()  # the woken worker reads the last known rules back from storage
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    page.click("#f0")
    wait_for(lambda: b.recent(), what="a decision")
    assert b.recent()[0]["reason"] == "capture is off"
    wait_for(lambda: (b.downloads / "a.bin").exists(), what="the browser download")


def test_small_file_below_the_minimum_stays_with_the_browser(make_browser, site) -> None:
    digest = site.add("tiny.txt", 2_000)
    b: Browser = make_browser()
    b.set_stored_rules({"minSize": 1024 * 1024})
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    page.click("#f0")
    wait_for(lambda: b.recent(), what="a decision")
    assert "smaller than" in b.recent()[0]["reason"]
    wait_for(lambda: (b.downloads / "tiny.txt").exists()
             and sha256(b.downloads / "tiny.txt") == digest, what="the browser download")


def test_blob_and_form_post_downloads_stay_with_the_browser(make_browser, site) -> None:
    site.add("export.csv", 5_000)
    b: Browser = make_browser()
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    page.click("#blob")
    wait_for(lambda: (b.downloads / "made.txt").exists(), what="the blob download")
    assert (b.downloads / "made.txt").read_text() == "made in page"
    page.click("#post")
    wait_for(lambda: (b.downloads / "export.csv").exists(), what="the POST download")
    reasons = [r["reason"] for r in b.recent()]
    assert any("blob: URLs stay" in r for r in reasons), reasons
    assert any("POST" in r for r in reasons), reasons
    assert len(site.hits("/form", "POST")) == 1  # the form was sent once, by the browser


def test_download_after_the_worker_was_stopped_is_still_seen(make_browser, site) -> None:
    site.add("late.bin", 20_000)
    b: Browser = make_browser()
    b.stop_workers()
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    page.click("#f0")
    # The click woke the worker; its top-level listener decided (no host: browser keeps it).
    wait_for(lambda: (b.downloads / "late.bin").exists(), what="the download")
    wait_for(lambda: b.recent(), what="the woken worker's decision")
    assert b.recent()[0]["name"] == "late.bin"
    assert "running" in b.worker_statuses[b.worker_statuses.index("stopped"):]


def test_options_page_without_a_daemon_says_so_and_saves_nothing(make_browser) -> None:
    b: Browser = make_browser()
    page = b.ctx.new_page()
    page.goto(f"chrome-extension://{EXTENSION_ID}/options.html")
    page.wait_for_selector("#source[data-source=default]")
    assert "not been reached yet" in page.inner_text("#source")
    page.fill("#minSize", "lots")
    page.click("#save")
    page.wait_for_selector("#msg.bad")
    assert "not a size" in page.inner_text("#msg")
    page.fill("#minSize", "2 MB")
    page.fill("#neverSites", "*.bank.test\nexample.org")
    page.click("#save")
    page.wait_for_selector("#msg.bad")
    assert "Not saved" in page.inner_text("#msg")  # only the daemon keeps rules
    rules = b.ev("freight.rules()")
    assert rules["minSize"] == 0 and rules["neverSites"] == []
    assert b.page_ev("chrome.storage.local.get('rules')") == {}


def test_rules_an_older_version_kept_in_the_browser_are_dropped(make_browser) -> None:
    b: Browser = make_browser()
    b.page_ev("chrome.storage.local.set({rules: {enabled: false, minSize: 1048576}})")
    b.stop_workers()
    b.page_ev("chrome.runtime.sendMessage({type: 'state'})")  # wakes the worker
    wait_for(lambda: b.page_ev("chrome.storage.local.get('rules')") == {},
             what="the old per-browser rules to be removed")
    assert b.state()["rules"]["enabled"] is True  # the daemon's defaults, not the old rules
    assert b.state()["rulesInfo"]["source"] == "default"
