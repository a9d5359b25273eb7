"""The popup in daily use, in real Chromium with the real extension, native host and daemon:

- names: a download the browser sent shows the name the browser gave it while it waits in the
  queue (the daemon names a download only once its server answered), and a running one the
  name its server gave (`download.changed`), not its URL's last segment;
- order: active first, then queued in the queue's order, then paused, then the history: the
  newest queued rows do not bury the active one;
- the header counts every state that has downloads ("2 paused", never "0 active");
- Cancel waits for its Undo: the daemon is asked only once the undo time is over, also when
  the popup was closed meanwhile; the row then says "cancelled" with no stale progress;
- every row has a date, and the search box keeps the rows whose name or URL match.

With FREIGHT_SCREENSHOTS set, the popup is also saved as docs/extension-popup.png (the
picture README shows).
"""

from __future__ import annotations

import html
import os
import re
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from browser_support import (
    EXTENSION_ID,
    ROOT,
    Browser,
    Daemon,
    rpc_via_page,
    wait_for,
)
from faultserver import FaultServer, make_data

pytestmark = pytest.mark.browser

POPUP = f"chrome-extension://{EXTENSION_ID}/popup.html"
MIB = 1024 * 1024


def rows(popup: Any) -> list[dict[str, Any]]:
    """The popup's rows as shown, top to bottom (the search's hidden ones too)."""
    return list(popup.evaluate(
        "[...document.querySelectorAll('#list .dl')].map((r) => ({id: Number(r.dataset.id), "
        "name: r.querySelector('.name').textContent, hidden: r.hidden, "
        "state: r.querySelector('.pill').textContent, "
        "when: r.querySelector('.when')?.textContent ?? '', "
        "meta: r.querySelector('.meta').textContent, "
        "bar: r.querySelector('.bar > div').style.width, "
        "actions: [...r.querySelectorAll('.actions button')].map((b) => b.textContent)}))"))


def header(popup: Any) -> dict[str, str]:
    """The header's counts: state → number."""
    return dict(popup.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#summary .count[data-state]')]"
        ".map((c) => [c.dataset.state, c.querySelector('b').textContent]))"))


def by_id(popup: Any, download_id: int) -> dict[str, Any]:
    return next(r for r in rows(popup) if r["id"] == download_id)


def state_of(daemon: Daemon, download_id: int) -> str:
    return next(d["state"] for d in daemon.downloads() if d["id"] == download_id)


def until_equal(fn: Callable[[], Any], want: Any, what: str, timeout: float = 30) -> None:
    """Wait for fn() to be `want`; on a timeout, the assertion shows what it was instead."""
    try:
        wait_for(lambda: fn() == want, timeout=timeout, what=what)
    except AssertionError:
        assert fn() == want, what


def keep(b: Browser, page: Any, name: str) -> None:
    shot = b.screenshot(page, name)
    if os.environ.get("FREIGHT_SCREENSHOTS"):
        shutil.copyfile(shot, ROOT / "docs" / name)


def test_popup_names_order_counts_cancel_undo_dates_search(
        start_connected: Callable[[], tuple[Browser, Daemon]], fault_server: FaultServer) -> None:
    b, daemon = start_connected()
    for name, value in (("max_active", "1"), ("connections", "1")):
        daemon.cli("settings", name, value)
    # The history: one finished download.
    done_url = fault_server.add("/files/report-2025.pdf", data=make_data(48 * 1024, seed=1))
    daemon.cli("add", done_url)
    wait_for(lambda: [d["state"] for d in daemon.downloads()] == ["completed"],
             what="the first download to complete")
    # Running, slowly: its URL ends in "get", its server calls it real-name.iso.
    active_url = fault_server.add(
        "/dl/7/get", data=make_data(6 * MIB, seed=2), rate=96 * 1024, etag=True,
        content_disposition='attachment; filename="real-name.iso"')
    daemon.cli("add", active_url)
    wait_for(lambda: any(d["name"] == "real-name.iso" and d["state"] == "active"
                         for d in daemon.downloads()), what="the daemon to name the active one")
    # Then two that wait in the queue (newer than the active one), and one paused.
    for i in (1, 2):
        daemon.cli("add", fault_server.add(f"/q/{i}/later-{i}.bin", data=make_data(2 * MIB, seed=i),
                                           etag=True))
    daemon.cli("add", "--paused", fault_server.add("/p/held.tar.gz", data=make_data(MIB, seed=9)))

    # A click in the browser: the download waits in the queue, unnamed by the daemon (its
    # server was not asked yet); the browser named it from the Content-Disposition it saw.
    fault_server.add("/dl/a1", data=make_data(3 * MIB, seed=3), etag=True,
                     content_disposition='attachment; filename="browser-named.iso"')
    fault_server.add("/page.html", data=(
        '<!doctype html><title>Files</title><a id="f" href="'
        + html.escape(fault_server.url("/dl/a1")) + '">the file</a>').encode(),
        content_type="text/html; charset=utf-8")
    popup = b.ctx.new_page()
    popup.set_viewport_size({"width": 460, "height": 640})
    popup.goto(POPUP)
    tab = b.ctx.new_page()
    tab.goto(fault_server.url("/page.html"))
    tab.click("#f")
    clicked = wait_for(lambda: [d for d in daemon.downloads() if d["url"].endswith("/dl/a1")],
                       what="the daemon to get the browser's download")[0]
    assert clicked["state"] == "queued" and clicked["name"] is None, clicked
    tab.close()

    ids = {d["url"].rsplit("/", 1)[-1]: d["id"] for d in daemon.downloads()}
    want = [("real-name.iso", "active"), ("later-1.bin", "queued"), ("later-2.bin", "queued"),
            ("browser-named.iso", "queued"), ("held.tar.gz", "paused"),
            ("report-2025.pdf", "completed")]
    until_equal(lambda: [(r["name"], r["state"]) for r in rows(popup)], want,
                "the rows in order, under their names")
    until_equal(lambda: header(popup), {"active": "1", "queued": "3", "paused": "1",
                                        "completed": "1"}, "the header's counts")
    # Every row has a date (all were added today; a run across midnight says "yesterday").
    for r in rows(popup):
        assert re.fullmatch(r"(yesterday )?\d\d:\d\d", r["when"]), r

    # Cancel waits for its Undo: the row says so, the daemon still has the download.
    held = ids["held.tar.gz"]
    popup.click(f'#list .dl[data-id="{held}"] button[data-action=cancel]')
    wait_for(lambda: by_id(popup, held)["actions"] == ["Undo"], what="the row's Undo")
    assert by_id(popup, held)["state"] == "cancelled"
    popup.click(f'#list .dl[data-id="{held}"] button[data-action=undo]')
    wait_for(lambda: by_id(popup, held)["state"] == "paused", what="the row to be paused again")
    assert state_of(daemon, held) == "paused"
    assert by_id(popup, held)["actions"] == ["Resume", "Cancel"]

    # Cancelled for good: sent once the undo time is over, though the popup closed meanwhile.
    popup.click(f'#list .dl[data-id="{held}"] button[data-action=cancel]')
    wait_for(lambda: by_id(popup, held)["actions"] == ["Undo"], what="the row's Undo")
    popup.close()
    wait_for(lambda: state_of(daemon, held) == "removed", timeout=30,
             what="the cancel to reach the daemon")
    popup = b.ctx.new_page()
    popup.set_viewport_size({"width": 460, "height": 640})
    popup.goto(POPUP)
    wait_for(lambda: len(rows(popup)) == 6, what="the popup's rows")
    row = by_id(popup, held)
    assert row["state"] == "cancelled" and row["actions"] == ["Remove"], row
    assert row["bar"] == "0%" and "partial data deleted" in row["meta"], row
    assert not popup.is_visible(f'#list .dl[data-id="{held}"] .bar')
    assert not popup.is_visible("#more-row")  # all 6 are shown: nothing to say about more
    # (the history: the last to finish on top)
    assert [r["id"] for r in rows(popup)][-2:] == [held, ids["report-2025.pdf"]]
    until_equal(lambda: header(popup), {"active": "1", "queued": "3", "completed": "1",
                                        "removed": "1"}, "the header to count the cancelled")
    assert "1 cancelled" in popup.inner_text("#summary")
    keep(b, popup, "extension-popup.png")

    # The search keeps the rows whose name or URL match, over the history too.
    popup.fill("#search", "REAL iso")
    wait_for(lambda: [r["name"] for r in rows(popup) if not r["hidden"]] == ["real-name.iso"],
             what="the search to keep one row")
    assert popup.inner_text("#more-text") == "1 found in all 6"
    popup.fill("#search", "/q/")
    wait_for(lambda: [r["name"] for r in rows(popup) if not r["hidden"]]
             == ["later-1.bin", "later-2.bin"], what="the search over URLs")
    popup.fill("#search", "nothing-like-it")
    wait_for(lambda: popup.is_visible("#no-match"), what="the no-match note")
    popup.fill("#search", "")
    wait_for(lambda: len([r for r in rows(popup) if not r["hidden"]]) == 6, what="every row back")

    # Everything paused: the header says how many, not "0 active".
    rpc_via_page(b, "pause_all")
    until_equal(lambda: header(popup), {"paused": "4", "completed": "1", "removed": "1"},
                "the header to count 4 paused")
    assert "active" not in popup.inner_text("#summary")
