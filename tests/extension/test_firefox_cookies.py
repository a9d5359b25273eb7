"""SameSite end to end in firefox-esr (over WebDriver BiDi) + the real host and daemon: a link on
another site (`localhost`) to a download on 127.0.0.1 gets the Lax and plain cookies Firefox
itself sent with the click, never the Strict one it withheld.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (  # noqa: F401 (fixtures)
    EXTENSION,
    GECKO_ID,
    Bidi,
    Daemon,
    firefox_profile,
    freight_daemon,
    freight_env,
    install_host,
    sha256_file,
    start_firefox,
    wait_for,
)
from ext_site import Site
from test_chromium_cookies import requests_for

pytestmark = pytest.mark.browser


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    b, a = Site().start(), Site().start()
    yield b, a
    b.stop()
    a.stop()


def firefox_with_freight(start_firefox: Any, env: dict[str, str], tmp_path: Path) -> Bidi:  # noqa: F811
    install_host(env, "--browser", "firefox")
    profile, downloads = tmp_path / "ff-profile", tmp_path / "ff-downloads"
    downloads.mkdir()
    firefox_profile(profile, downloads)
    bidi: Bidi = start_firefox(profile, env)
    res = bidi.cmd("webExtension.install", extensionData={"type": "path", "path": str(EXTENSION)})
    assert res["extension"] == GECKO_ID
    return bidi


def test_firefox_a_download_linked_from_another_site_gets_no_strict_cookie(
    start_firefox, freight_env, freight_daemon, sites, tmp_path  # noqa: F811
) -> None:
    daemon: Daemon = freight_daemon
    site, other = sites
    digest = site.add("slow-ff-cross.bin", 1024 * 1024)  # paced: Firefox cannot finish first
    other.links["dl"] = f"{site.base}/files/slow-ff-cross.bin"
    bidi = firefox_with_freight(start_firefox, freight_env, tmp_path)
    ctx = bidi.cmd("browsingContext.getTree")["contexts"][0]["context"]
    bidi.cmd("browsingContext.navigate", context=ctx, url=f"{site.base}/samesite.html",
             wait="complete")
    bidi.cmd("browsingContext.navigate", context=ctx,
             url=f"{other.base_as('localhost')}/links.html", wait="complete")
    bidi.cmd("script.evaluate", expression="document.getElementById('dl').click()",
             target={"context": ctx}, awaitPromise=False)

    def finished() -> dict[str, Any] | None:
        for d in daemon.downloads():
            if d["state"] in ("completed", "failed", "needs_refresh"):
                return d
        return None
    d = wait_for(finished, timeout=60, what="the daemon to finish the file Firefox handed over")
    assert d["state"] == "completed", d
    assert sha256_file(Path(d["path"])) == hashlib.sha256(
        site.files["slow-ff-cross.bin"]).hexdigest() == digest

    by_browser, by_daemon = requests_for(site, "slow-ff-cross.bin")
    assert by_browser and by_daemon, site.requests
    # What Firefox sent for a cross-site top-level GET: not the Strict cookie.
    assert by_browser[0].cookie_names() == {"lax_c", "plain_c"}, by_browser[0]
    for r in by_daemon:
        assert r.cookie_names() == by_browser[0].cookie_names(), r
