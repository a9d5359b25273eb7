"""Expired links and the context menu, end to end: Chromium + the extension + the real host
(`freight install`) + the real daemon, against the fault server.

The refresh flow is what a user of a file host with signed URLs lives through: the download
starts, the link expires while it is paused, the daemon says `needs_refresh`, the popup offers
"Refresh link", the user clicks the link on the page again (now a freshly signed URL), and the
extension hands that URL to the SAME download with `refresh`: it resumes where it stopped, no
second download, no browser file, no second full transfer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_support import (  # noqa: F401 (fixtures)
    EXTENSION_ID,
    Browser,
    freight_daemon,
    freight_env,
    install_host,
    rpc_via_page,
    sha256_file,
    wait_for,
)
from faultserver import FaultServer, make_data

pytestmark = pytest.mark.browser

SIZE = 3 * 1024 * 1024
SLOW = 32 * 1024  # bytes/s per connection before the link expires: the daemon cannot finish
FAST = 1024 * 1024  # bytes/s per connection on the refreshed link


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def browser(make_browser, freight_env, freight_daemon) -> Browser:  # noqa: F811
    def before_launch(udd: Path) -> None:
        install_host(freight_env, "--browser", "chromium", "--user-data-dir", str(udd))

    b: Browser = make_browser(before_launch, extra_env=freight_env)
    wait_for(lambda: b.state()["status"]["state"] == "connected", timeout=30,
             what="the extension to reach the daemon")
    return b


def publish_page(srv: FaultServer, href: str, *, cookie: str | None = None) -> str:
    """The download page: one link to `href` (and a session cookie when given)."""
    html = (f'<!doctype html><title>Files</title><h1>Files</h1>'
            f'<p><a id="dl" href="{href}">movie.bin</a></p>').encode()
    headers = {"Set-Cookie": f"{cookie}; Path=/; HttpOnly"} if cookie else None
    return srv.add("/page.html", data=html, content_type="text/html; charset=utf-8",
                   headers=headers)


def daemon_list(b: Browser) -> list[dict[str, Any]]:
    return rpc_via_page(b, "list")["downloads"]


def the_download(b: Browser) -> dict[str, Any]:
    downloads = daemon_list(b)
    assert len(downloads) == 1, downloads
    return downloads[0]


def by_browser(stats: Any) -> int:
    """Requests the browser made itself (the daemon sends no Sec-Fetch-* headers)."""
    return sum(1 for r in stats.log if "sec-fetch-mode" in r.headers)


@dataclass
class Expired:
    page: Any  # the download page, still open
    signed: str  # the first (now expired) signed path
    data: bytes
    id: int
    held: int  # bytes the daemon holds


def start_and_expire(b: Browser, srv: FaultServer) -> Expired:
    """Click a signed link, let the daemon fetch part of it, expire the link, and let the
    daemon meet the expired link: the download ends in needs_refresh with its data kept."""
    data = make_data(SIZE, seed=7)
    signed = "/dl/movie.bin?sig=first"
    expires = time.time() + 6.0
    url = srv.add(signed, data=data, etag="v1", last_modified="Wed, 01 Jan 2025 00:00:00 GMT",
                  content_disposition='attachment; filename="movie.bin"', rate=SLOW,
                  expires_at=expires)
    page = b.ctx.new_page()
    page.goto(publish_page(srv, url))
    page.click("#dl")

    # The daemon took it and holds part of it; then it is paused (through the API, as the
    # popup's Pause button does) before the link expires.
    d = wait_for(lambda: (ds := daemon_list(b)) and ds[0]["done"] >= 64 * 1024 and ds[0],
                 timeout=20, what="the daemon to hold part of the file")
    assert time.time() < expires, "the daemon was too slow to start: raise the expiry"
    rpc_via_page(b, "pause", {"id": d["id"]})
    paused = the_download(b)
    assert paused["state"] == "paused" and 0 < paused["done"] < SIZE, paused
    wait_for(lambda: time.time() > expires + 0.2, timeout=10, what="the link to expire")

    # Resume: the daemon asks the old URL again, gets 403 and keeps its data.
    rpc_via_page(b, "resume", {"id": d["id"]})
    stuck = wait_for(lambda: (x := the_download(b))["state"] not in ("queued", "active") and x,
                     timeout=20, what="the daemon to meet the expired link")
    assert stuck["state"] == "needs_refresh", stuck
    assert stuck["done"] >= paused["done"] > 0
    assert 403 in srv.stats(signed).statuses
    return Expired(page, signed, data, d["id"], stuck["done"])


FRESH_PATH = "/dl/movie.bin?sig=second"


def sign_fresh_link(srv: FaultServer, ex: Expired) -> str:
    """The site signs a fresh URL for the same object and its page now links to it."""
    fresh = srv.refresh(ex.signed, FRESH_PATH, rate=FAST)
    publish_page(srv, fresh)
    return fresh


def click_fresh_link(b: Browser, srv: FaultServer, ex: Expired, page: Any = None) -> None:
    """The user clicks the fresh link on the page (reloaded, or the one `page` shows): the
    SAME download resumes and completes, and nothing is fetched twice."""
    fresh = srv.url(FRESH_PATH) if page is not None else sign_fresh_link(srv, ex)
    if page is None:
        page = ex.page
        page.goto(srv.url("/page.html"))
    page.click("#dl")
    fresh_path = FRESH_PATH

    done = wait_for(lambda: (x := the_download(b))["state"] in ("completed", "failed") and x,
                    timeout=30, what="the refreshed download to end")
    assert done["state"] == "completed", done
    assert done["id"] == ex.id  # the same download: `refresh`, not a second `add`
    assert done["url"] == fresh
    assert sha256_file(Path(done["path"])) == hashlib.sha256(ex.data).hexdigest()

    # Resumed, not restarted: the daemon asked the fresh URL only for ranges, and only for
    # the bytes it did not hold yet; the server sent well under twice the file in all.
    first, second = srv.stats(ex.signed), srv.stats(fresh_path)
    ranges = [r.range for r in second.log if "sec-fetch-mode" not in r.headers]
    # The daemon's probe of the fresh link (one byte: size and validators) came first.
    assert ranges[:1] == [(0, 0)], ranges
    ranges = ranges[1:]
    assert ranges and all(isinstance(r, tuple) and r[0] is not None and r[1] is not None
                          for r in ranges), ranges
    assert sum(r[1] - r[0] + 1 for r in ranges) <= SIZE - ex.held, (ranges, ex.held)
    total = first.bytes_sent + second.bytes_sent
    assert total < 1.5 * SIZE, (first.bytes_sent, second.bytes_sent)
    assert by_browser(first) == 1 and by_browser(second) == 1  # one click each

    # The browser wrote nothing and forgot both of its own attempts.
    assert b.downloaded() == []
    assert b.browser_downloads() == []
    assert b.recent()[0]["to"] == "freight" and "refreshed" in b.recent()[0]["reason"]
    assert b.state()["refreshWanted"] == []


def test_expired_link_refreshed_from_the_popup_resumes_the_same_download(browser, srv) -> None:
    b = browser
    ex = start_and_expire(b, srv)

    # The popup offers "Refresh link" and already says what to do; the user presses it.
    popup = b.ctx.new_page()
    popup.set_viewport_size({"width": 460, "height": 320})
    popup.goto(f"chrome-extension://{EXTENSION_ID}/popup.html")
    popup.wait_for_selector(".dl .pill.needs_refresh", timeout=10_000)
    button = popup.locator(".dl button[data-action=refresh]")
    assert button.inner_text() == "Refresh link"
    assert "link expired" in popup.inner_text(".dl .pill")
    popup.wait_for_selector("#refresh-note:not([hidden])", timeout=5_000)
    assert "movie.bin" in popup.inner_text("#refresh-note")
    b.screenshot(popup, "popup-needs-refresh.png")
    sign_fresh_link(srv, ex)  # what the site's page offers when it is opened again

    # Refresh link opens the download's page (its referrer) in a new tab and says what to
    # click there.
    with b.ctx.expect_page(timeout=10_000) as opened:
        button.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == srv.url("/page.html")
    popup.wait_for_selector(".dl .hint", timeout=5_000)
    assert popup.inner_text(".dl .hint") == (
        f"Click the link to movie.bin on that page: Freight takes the new link for download "
        f"#{ex.id}")
    b.screenshot(popup, "popup-refresh-opened-page.png")
    wait_for(lambda: [w["id"] for w in b.state()["refreshWanted"]] == [ex.id],
             what="the popup's choice to reach the worker")

    click_fresh_link(b, srv, ex, page=tab)
    wait_for(lambda: popup.locator(".dl .hint").count() == 0, what="the hint to go")


def test_clicking_the_link_again_refreshes_without_the_popup(browser, srv) -> None:
    # What the "Link expired" notification tells the user: open the page and click the link
    # again. The extension must recognise the file (same name and size) on its own.
    b = browser
    ex = start_and_expire(b, srv)
    click_fresh_link(b, srv, ex)


def test_context_menu_sends_the_link_with_cookies_and_referrer(browser, srv) -> None:
    # Headless Chromium draws no context menu, so no real right-click can choose the item.
    # The next best thing: fire the very event the browser fires when the user chooses
    # "Download with Freight" (contextMenus.onClicked, through its dispatch()), with the info
    # and tab objects Chromium passes, so that the handler the extension registered runs.
    b = browser
    data = make_data(700_000, seed=3)
    file_url = srv.add("/private/report.pdf", data=data, etag="r1",
                       require_cookie="session=menu-secret")
    page_url = publish_page(srv, file_url, cookie="session=menu-secret")
    page = b.ctx.new_page()
    page.goto(page_url)  # sets the HttpOnly cookie the file needs

    menus = b.ev("chrome.contextMenus.onClicked.hasListeners()")
    assert menus, "the worker registered no contextMenus.onClicked listener"
    info = {"menuItemId": "freight-one", "editable": False, "linkUrl": file_url,
            "pageUrl": page_url, "frameId": 0}
    b.ev(f"""(async () => {{
        const [tab] = await chrome.tabs.query({{url: {json.dumps(page_url)}}});
        if (!tab) throw new Error('the page tab is not open');
        chrome.contextMenus.onClicked.dispatch({json.dumps(info)}, tab);
        return tab.id;
    }})()""")

    d = wait_for(lambda: (ds := daemon_list(b)) and ds[0]["state"] in ("completed", "failed")
                 and ds[0], timeout=30, what="the daemon to finish the menu's download")
    assert d["state"] == "completed", d
    assert d["name"] == "report.pdf"
    assert sha256_file(Path(d["path"])) == hashlib.sha256(data).hexdigest()
    stats = srv.stats("/private/report.pdf")
    assert stats.requests >= 1 and 403 not in stats.statuses  # the cookie went along
    for h in stats.headers:
        assert "session=menu-secret" in h.get("cookie", ""), h
        assert h.get("referer") == page_url, h
        assert "sec-fetch-mode" not in h  # the daemon fetched it, never the browser
    assert b.downloaded() == [] and b.browser_downloads() == []
    assert b.recent()[0]["to"] == "freight"


def waiting_row(b: Browser, ex: Expired) -> dict[str, Any]:
    return next(d for d in daemon_list(b) if d["id"] == ex.id)


def part_of(b: Browser, ex: Expired) -> bytes:
    return Path(waiting_row(b, ex)["path"] + ".part").read_bytes()


def still_waiting(b: Browser, srv: FaultServer, ex: Expired, part: bytes) -> None:
    """The expired download waits as it was: same link, same bytes held, nothing spliced."""
    row = waiting_row(b, ex)
    assert row["state"] == "needs_refresh", row
    assert row["url"] == srv.url(ex.signed) and row["done"] == ex.held, row
    assert part_of(b, ex) == part
    assert [w["id"] for w in b.state()["refreshWanted"]] == [ex.id]


def test_a_page_on_another_site_never_supplies_the_fresh_link(browser, srv) -> None:
    # Another site (localhost: the same server under another name, so another site) offers
    # a file of the same name and the same size: it is not the waiting download's link.
    b = browser
    ex = start_and_expire(b, srv)
    part = part_of(b, ex)
    other = make_data(SIZE, seed=99)
    srv.add("/elsewhere/movie.bin", data=other, etag="v1",
            content_disposition='attachment; filename="movie.bin"')
    html = (f'<!doctype html><title>Mirror</title><p><a id="dl" '
            f'href="{srv.host_alias_url("/elsewhere/movie.bin")}">movie.bin</a></p>').encode()
    srv.add("/elsewhere/page.html", data=html, content_type="text/html; charset=utf-8")
    page = b.ctx.new_page()
    page.goto(srv.host_alias_url("/elsewhere/page.html"))
    page.click("#dl")

    # A download of its own (the extension's ordinary `add`), never the refresh.
    added = wait_for(lambda: (ds := [d for d in daemon_list(b) if d["id"] != ex.id])
                     and ds[0]["state"] in ("completed", "failed") and ds[0],
                     timeout=30, what="the other site's file to be a download of its own")
    assert added["state"] == "completed" and added["url"].startswith("http://localhost:"), added
    assert Path(added["path"]).read_bytes() == other
    still_waiting(b, srv, ex, part)
    assert b.recent()[0]["reason"] == f"#{added['id']}", b.recent()

    # The real page's fresh link is still taken, and the file is byte-exact.
    rpc_via_page(b, "remove", {"id": added["id"], "delete_file": True})
    click_fresh_link(b, srv, ex)


def test_a_fresh_link_the_daemon_refuses_stays_with_the_browser_and_says_why(
    browser, srv
) -> None:
    # The page now links to a new version of the file (same name, same size, another ETag):
    # the extension offers it as the fresh link, the daemon refuses it, the browser keeps its
    # download, and the user is told why; the expired download keeps waiting, unspliced.
    b = browser
    ex = start_and_expire(b, srv)
    part = part_of(b, ex)
    newer = make_data(SIZE, seed=8)
    url = srv.add("/dl/movie.bin?sig=newer", data=newer, etag="v2",
                  content_disposition='attachment; filename="movie.bin"')
    ex.page.goto(publish_page(srv, url))
    ex.page.click("#dl")

    told = wait_for(lambda: (r := b.recent()) and r[0]["to"] == "browser" and r[0],
                    timeout=30, what="the refusal to reach the extension")
    assert "different file" in told["reason"] and "ETag" in told["reason"], told
    notes = b.ev("new Promise((resolve) => chrome.notifications.getAll(resolve))")
    assert f"freight-refused-{ex.id}" in notes, notes
    saved = wait_for(lambda: (fs := b.downloaded()) and not fs[0].name.endswith(".crdownload")
                     and fs[0].stat().st_size == SIZE and fs, timeout=30,
                     what="the browser to finish its own download")
    assert [f.read_bytes() == newer for f in saved] == [True]
    assert len(daemon_list(b)) == 1  # no second download in Freight
    still_waiting(b, srv, ex, part)
