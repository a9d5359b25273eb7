"""Many downloads, in real Chromium with the real extension, native host and daemon.

- "Download all links with Freight…" on a page of 300 links to small files: the picker sends
  all 300, the daemon completes every one with the right bytes under its own name, and the
  popup, open all the while, shows every download to its end and answers a click meanwhile.
- A daemon holding 10,000 downloads: the popup shows the newest page only (in its order:
  paused and failed ones first, then the history), the header counts
  the daemon's totals, and "Show more" fetches the next page.

No timer is asserted here: bench/popup_paint.py measures how fast.
"""

from __future__ import annotations

import hashlib
import html
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    EXTENSION_ID,
    Browser,
    Daemon,
    daemon_env,
    wait_for,
)
from faultserver import FaultServer, make_data
from history import STATES, fill_history

pytestmark = pytest.mark.browser


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

POPUP = f"chrome-extension://{EXTENSION_ID}/popup.html"
NOTES = "new Promise((resolve) => chrome.notifications.getAll(resolve))"
#: The popup's first page (extension/js/popup.js PAGE).
PAGE = 100


def links_page(srv: FaultServer, count: int, seed: int = 7) -> dict[str, bytes]:
    """Serve /links.html with `count` links to small files (1–200 KiB, a little latency);
    every tenth one is named "same.bin" by its server. Returns URL → content."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(count):
        data = make_data(rng.randint(1, 200) * 1024, seed=i)
        name = "same.bin" if i % 10 == 0 else f"file-{i:03d}.bin"
        url = srv.add(f"/d/{i:03d}/{name}", data=data, etag=True, latency=0.02,
                      content_disposition=f'attachment; filename="{name}"')
        files[url] = data
    body = "<!doctype html><title>Small files</title><h1>Files</h1>" + "".join(
        f'<p><a href="{html.escape(u)}">{i}</a></p>' for i, u in enumerate(files))
    srv.add("/links.html", data=body.encode(), content_type="text/html; charset=utf-8")
    return files


def rows(popup: Any) -> list[dict[str, Any]]:
    """The popup's rows as shown: id, name, state."""
    return list(popup.evaluate(
        "[...document.querySelectorAll('#list .dl')].map((r) => ({id: Number(r.dataset.id), "
        "name: r.querySelector('.name').textContent, "
        "state: r.querySelector('.pill').className.replace('pill ', '')}))"))


def test_picker_sends_300_links_and_the_popup_follows_them(
        start_connected: Callable[[], tuple[Browser, Daemon]], fault_server: FaultServer) -> None:
    files = links_page(fault_server, 300)
    held = make_data(64 * 1024, seed=999)
    held_url = fault_server.add("/held/held.bin", data=held, etag=True)
    b, daemon = start_connected()
    daemon.cli("add", "--paused", held_url)  # waits for the popup's "Resume"

    popup = b.ctx.new_page()
    popup.goto(POPUP)
    popup.wait_for_selector("#list .dl .pill.paused")
    tab = b.ctx.new_page()
    tab.goto(fault_server.url("/links.html"))
    tab_id = b.page_ev("chrome.tabs.query({}).then((ts) => "
                       "ts.find((t) => (t.url || '').endsWith('/links.html')).id)")
    # As the context menu opens it (menus.js): the picker names the tab it reads.
    picker = b.ctx.new_page()
    picker.goto(f"chrome-extension://{EXTENSION_ID}/picker.html?tab={tab_id}")
    wait_for(lambda: picker.inner_text("#msg") == "300 of 300 links",
             what="the picker to list the page's links")
    picker.click("#all")
    picker.click("#send")

    # While the 300 are added and run, the popup answers a click.
    wait_for(lambda: len(rows(popup)) > 10, what="the popup to show the new downloads")
    assert picker.inner_text("#msg") == "300 of 300 links"  # still sending
    # (dispatched, not clicked with the mouse: the row moves as new ones come in above it)
    popup.dispatch_event("#list .dl:has(.pill.paused) button[data-action=resume]", "click")
    shown = len(rows(popup))
    assert shown < 301, shown  # the click came while the downloads were still coming

    wait_for(lambda: picker.inner_text("#msg") == "300 sent to Freight.", timeout=120,
             what="the picker to say all were sent")
    assert picker.get_attribute("#msg", "class") == "ok"

    def ended() -> list[dict[str, Any]]:
        ds = daemon.downloads()
        done = [d for d in ds if d["state"] in ("completed", "failed", "needs_refresh")]
        return ds if len(ds) == 301 and len(done) == 301 else []
    downloads = wait_for(ended, timeout=180, what="the daemon to finish all 301")
    assert [d for d in downloads if d["state"] != "completed"] == []
    by_url = {d["url"]: d for d in downloads}
    assert set(by_url) == {*files, held_url}
    # Sent several at once, but in the page's order: the daemon queued them so.
    assert [by_url[u]["id"] for u in files] == sorted(by_url[u]["id"] for u in files)
    for url, data in [*files.items(), (held_url, held)]:
        path = Path(by_url[url]["path"])
        assert sha256(path.read_bytes()) == sha256(data), url
    paths = [d["path"] for d in downloads]
    assert len(set(paths)) == 301  # the 30 "same.bin" each got a name of its own
    assert len({d["name"] for d in downloads}) == 301

    # The popup shows every one of them, to its end, under the daemon's name.
    want = {d["id"]: d["name"] for d in downloads}
    wait_for(lambda: {r["id"]: (r["name"], r["state"]) for r in rows(popup)}
             == {i: (n, "completed") for i, n in want.items()}, timeout=30,
             what="the popup to show all 301 completed")
    # (a state with no download has no count: "301 done", not "0 active")
    wait_for(lambda: popup.inner_text("#summary") == "301 done",
             what="the popup's header to count none active")

    # One notification for them all (they end within moments of each other), not 301.
    notes = wait_for(lambda: [k for k in b.ev(NOTES) if k.startswith("freight-")], timeout=30,
                     what="the notification")
    assert len(notes) <= 3 and "freight-done-many" in notes, notes
    # An event about one download changes that download's row only: the others stay as
    # they are (redrawing every row for every event is what made a long list slow).
    popup.evaluate(
        "window.touched = new Set(); new MutationObserver((records) => { for (const m of records) "
        "{ const t = m.target.nodeType === 1 ? m.target : m.target.parentElement; "
        "window.touched.add(t.closest('.dl')?.dataset.id ?? t.id); } })"
        ".observe(document.getElementById('list'), "
        "{subtree: true, childList: true, attributes: true, characterData: true})")
    gone = downloads[150]["id"]
    daemon.cli("rm", str(gone))
    wait_for(lambda: len(rows(popup)) == 300, what="the popup to drop the removed download")
    popup.wait_for_timeout(500)  # (the counts that follow the event come 0.25 s later)
    assert popup.evaluate("[...window.touched]") == ["list"]
    assert gone not in {r["id"] for r in rows(popup)}


def popup_order(numbers: range) -> list[str]:
    """The names of history.fill_history's downloads `numbers` in the popup's order."""
    def state(i: int) -> str:
        return STATES[i % 100].value
    return ([f"f{i}.bin" for i in numbers if state(i) == "paused"]
            + [f"f{i}.bin" for i in numbers if state(i) == "failed"]
            + [f"f{i}.bin" for i in reversed(numbers) if state(i) == "completed"])


def test_popup_pages_ten_thousand_downloads(
        start_connected: Callable[[], tuple[Browser, Daemon]], tmp_path: Path) -> None:
    n = 10_000
    env = daemon_env(tmp_path)
    counts = fill_history(Path(env["FREIGHT_HOME"]), n, tmp_path / "dl")
    b, _daemon = start_connected()
    popup = b.ctx.new_page()
    popup.goto(POPUP)
    popup.wait_for_selector("#list .dl")
    wait_for(lambda: popup.inner_text("#summary .count[data-state=paused] b")
             == str(counts["paused"]), what="the header to count every paused download")
    first = rows(popup)
    # The newest page only, in the popup's order (popupview.js): what waits for the user
    # (paused, then failed, each in queue order), then the history, newest first.
    assert [r["name"] for r in first] == popup_order(range(n - PAGE, n))
    assert popup.inner_text("#more-text") == f"{PAGE} of {n} shown"
    assert popup.is_visible("#more")

    popup.click("#more")
    wait_for(lambda: len(rows(popup)) == 2 * PAGE, what="the next page")
    assert [r["name"] for r in rows(popup)] == popup_order(range(n - 2 * PAGE, n))
    assert popup.inner_text("#more-text") == f"{2 * PAGE} of {n} shown"
    # The states shown are the daemon's.
    by_name = {r["name"]: r["state"] for r in rows(popup)}
    assert by_name["f9999.bin"] == "failed" and by_name["f9998.bin"] == "paused"
    assert by_name["f9989.bin"] == "completed"
