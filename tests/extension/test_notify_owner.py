"""Only the browser that sent a download notifies about it: two Chromium instances with the
extension, both connected through their own host to one real daemon (every host subscribes and
gets every download's events). A download the CLI added notifies in neither; one captured in
the first browser notifies there exactly once and never in the second."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from browser_support import (  # noqa: F401 (fixtures)
    EXTENSION_ID,
    Browser,
    ended_completed,
    freight_daemon,
    freight_env,
    install_host,
    rpc_via_page,
    sha256_file,
    site,
    wait_for,
)

pytestmark = pytest.mark.browser

NOTES = "new Promise((resolve) => chrome.notifications.getAll(resolve))"


def notifications(b: Browser) -> dict[str, Any]:
    return dict(b.ev(NOTES))


def test_only_the_browser_that_captured_a_download_notifies(
    make_browser, freight_env, freight_daemon, site  # noqa: F811
) -> None:
    def before_launch(udd: Path) -> None:
        install_host(freight_env, "--browser", "chromium", "--user-data-dir", str(udd))

    first: Browser = make_browser(before_launch, extra_env=freight_env)
    second: Browser = make_browser(before_launch, extra_env=freight_env)
    for b in (first, second):
        wait_for(lambda b=b: b.state()["status"]["state"] == "connected", timeout=30,
                 what="each extension to reach the daemon")

    # Added by the CLI: no browser sent it, no browser says anything about it.
    cli_digest = site.add("from-cli.bin", 300_000)
    out = freight_daemon.cli("add", "--json", f"{site.base}/files/from-cli.bin")
    (cli_id,) = json.loads(out)["ids"]
    d = ended_completed(first, cli_id)
    assert sha256_file(Path(d["path"])) == cli_digest

    # The second browser's popup is open: it shows the events its worker gets, in the same
    # step in which the worker would notify.
    watching = second.ctx.new_page()
    watching.goto(f"chrome-extension://{EXTENSION_ID}/popup.html")

    # Captured by a click in the first browser.
    digest = site.add("clicked.bin", 2 * 1024 * 1024)
    page = first.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    page.click(f"#f{sorted(site.files).index('clicked.bin')}")
    clicked = wait_for(lambda: [x for x in rpc_via_page(first, "list")["downloads"]
                                if x["name"] == "clicked.bin"], what="the daemon to take it")
    clicked_id = clicked[0]["id"]
    d = ended_completed(first, clicked_id)
    assert hashlib.sha256(Path(d["path"]).read_bytes()).hexdigest() == digest

    note = f"freight-done-{clicked_id}"
    wait_for(lambda: note in notifications(first), what="the first browser's notification")
    # The second browser got the same event (its popup shows it ended)...
    watching.wait_for_selector(f'.dl[data-id="{clicked_id}"] .pill.completed', timeout=30_000)
    # ...but only the first told the user, once, and only about its own download.
    assert [k for k in notifications(first) if k.startswith("freight-")] == [note]
    assert notifications(first)[note]
    assert [k for k in notifications(second) if k.startswith("freight-")] == []
    # Which downloads are its own is kept where a browser restart finds it.
    owned = first.page_ev("chrome.storage.local.get('owned').then((x) => x.owned)")
    assert owned == [clicked_id]
    assert second.page_ev("chrome.storage.local.get('owned').then((x) => x.owned ?? [])") == []
