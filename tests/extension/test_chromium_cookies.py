"""SameSite end to end: Chromium + the extension + the real host and daemon. The daemon must
send a download's server exactly the cookies Chromium itself sent with the request it took
over (draft-ietf-httpbis-rfc6265bis §5.8.3): a page on another site linking to a download must
not get the user's SameSite=Strict cookie used for it.

Site B is the file server on 127.0.0.1; site A is another server reached as `localhost`, a
different site (an IP address and a host name share no registrable domain). The server tells
the browser's own request (it carries Sec-Fetch-Mode) from the daemon's (it does not). The
`refresh` of an expired link is checked the same way, on the fault server (reached as
127.0.0.1 and as localhost).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (  # noqa: F401 (fixtures)
    Browser,
    freight_daemon,
    freight_env,
    sha256_file,
    wait_for,
)
from ext_site import Seen, Site
from test_chromium_daemon import completed, connected, daemon, env  # noqa: F401 (fixtures)
from test_refresh_flow import browser, srv, start_and_expire, the_download  # noqa: F401

pytestmark = pytest.mark.browser

ALL = {"strict_c", "lax_c", "plain_c"}


@pytest.fixture
def other_site() -> Iterator[Site]:
    s = Site().start()
    yield s
    s.stop()


def log_in(b: Browser, site: Site) -> None:
    """A first visit to site B: it sets a Strict, a Lax and a plain (no SameSite) cookie."""
    page = b.ctx.new_page()
    page.goto(f"{site.base}/samesite.html")
    names = {c["name"] for c in b.ctx.cookies(site.base)}
    assert names >= ALL, names
    page.close()


def click_link(b: Browser, page_url: str) -> None:
    page = b.ctx.new_page()
    page.goto(page_url)
    page.click("#dl")  # a real click: a top-level navigation that turns into a download


def requests_for(site: Site, name: str) -> tuple[list[Seen], list[Seen]]:
    """(the browser's own requests, the daemon's) for /files/NAME."""
    with site.lock:
        seen = [r for r in site.requests if r.path == f"/files/{name}"]
    return [r for r in seen if r.fetch_mode], [r for r in seen if not r.fetch_mode]


def test_a_download_linked_from_another_site_gets_no_strict_cookie(
    connected, site: Site, other_site: Site  # noqa: F811
) -> None:
    b: Browser = connected
    digest = site.add("cross.bin", 600_000)
    log_in(b, site)
    other_site.links["dl"] = f"{site.base}/files/cross.bin"
    click_link(b, f"{other_site.base_as('localhost')}/links.html")
    d = completed(b, "cross.bin")
    assert sha256_file(Path(d["path"])) == digest

    by_browser, by_daemon = requests_for(site, "cross.bin")
    assert by_browser and by_daemon, site.requests
    # What Chromium sent for a cross-site top-level GET: Lax and Lax-by-default, not Strict.
    assert by_browser[0].cookie_names() == {"lax_c", "plain_c"}, by_browser[0]
    for r in by_daemon:
        assert r.cookie_names() == by_browser[0].cookie_names(), r
        assert "strict_c" not in r.cookie, r
    assert b.recent()[0]["to"] == "freight"


def test_a_download_linked_from_its_own_site_gets_every_cookie(
    connected, site: Site  # noqa: F811
) -> None:
    b: Browser = connected
    digest = site.add("same.bin", 600_000)
    log_in(b, site)
    site.links["dl"] = f"{site.base}/files/same.bin"
    click_link(b, f"{site.base}/links.html")
    d = completed(b, "same.bin")
    assert sha256_file(Path(d["path"])) == digest

    by_browser, by_daemon = requests_for(site, "same.bin")
    assert by_browser and by_daemon, site.requests
    assert by_browser[0].cookie_names() == ALL, by_browser[0]
    for r in by_daemon:
        assert r.cookie_names() == ALL, r



def test_a_download_in_a_frame_of_its_own_site_gets_every_cookie(
    connected, site: Site  # noqa: F811
) -> None:
    # A hidden frame whose navigation is the download, a common download-page pattern: a
    # same-site frame in a same-site page gets everything, as the browser sends it.
    b: Browser = connected
    digest = site.add("framed.bin", 600_000)
    log_in(b, site)
    site.frames["frame"] = f"{site.base}/files/framed.bin"
    b.ctx.new_page().goto(f"{site.base}/links.html")
    d = completed(b, "framed.bin")
    assert sha256_file(Path(d["path"])) == digest

    by_browser, by_daemon = requests_for(site, "framed.bin")
    assert by_browser and by_daemon, site.requests
    assert by_browser[0].cookie_names() == ALL, by_browser[0]
    for r in by_daemon:
        assert r.cookie_names() == ALL, r


def test_a_download_in_a_frame_of_another_site_gets_no_same_site_cookie(
    connected, site: Site, other_site: Site  # noqa: F811
) -> None:
    # The frame is B's, the page around it A's: a cross-site request that is no top-level
    # navigation carries no Strict, Lax or Lax-by-default cookie (6265bis §5.2.1, §5.8.3).
    b: Browser = connected
    digest = site.add("framed-cross.bin", 600_000)
    log_in(b, site)
    other_site.frames["frame"] = f"{site.base}/files/framed-cross.bin"
    b.ctx.new_page().goto(f"{other_site.base_as('localhost')}/links.html")
    d = completed(b, "framed-cross.bin")
    assert sha256_file(Path(d["path"])) == digest

    by_browser, by_daemon = requests_for(site, "framed-cross.bin")
    assert by_browser and by_daemon, site.requests
    assert by_browser[0].cookie == "", by_browser[0]
    for r in by_daemon:
        assert r.cookie == "", r

def test_a_refresh_linked_from_another_site_gets_no_strict_cookie(browser, srv) -> None:  # noqa: F811
    # `refresh` carries the cookies of the click that brought the fresh link: the same filter.
    b: Browser = browser
    ex = start_and_expire(b, srv)
    for name, attrs in (("strict_c", "SameSite=Strict"), ("lax_c", "SameSite=Lax")):
        login = srv.add(f"/login-{name}.html", data=b"<!doctype html><title>in</title>",
                        content_type="text/html; charset=utf-8",
                        headers={"Set-Cookie": f"{name}=1; Path=/; {attrs}"})
        ex.page.goto(login)
    fresh_path = "/dl/movie.bin?sig=second"
    fresh = srv.refresh(ex.signed, fresh_path, rate=1024 * 1024)
    srv.add("/elsewhere.html", content_type="text/html; charset=utf-8",
            data=f'<!doctype html><a id="dl" href="{fresh}">movie.bin</a>'.encode())
    ex.page.goto(srv.host_alias_url("/elsewhere.html"))  # localhost: another site
    ex.page.click("#dl")

    def ended() -> dict | None:
        d = the_download(b)
        return d if d["state"] in ("completed", "failed") else None
    done = wait_for(ended, timeout=30, what="the refreshed download to end")
    assert done["state"] == "completed" and done["id"] == ex.id, done  # `refresh`, not `add`
    log = srv.stats(fresh_path).log
    by_browser = [r.headers for r in log if "sec-fetch-mode" in r.headers]
    by_daemon = [r.headers for r in log if "sec-fetch-mode" not in r.headers]
    assert by_browser and by_daemon, log
    assert by_browser[0].get("cookie") == "lax_c=1", by_browser[0]
    for h in by_daemon:
        assert h.get("cookie") == "lax_c=1", h
