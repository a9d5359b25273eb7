"""A link clicked again that the daemon already has (docs/PROTOCOL.md "Duplicates"): Chromium
with the extension, its real native host and a real daemon. The second click adds nothing,
the browser writes nothing, and a notification offers the choices; "Download again" (the
button, as the browser reports it) adds a new copy."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from browser_support import (  # noqa: F401 (fixtures)
    Browser,
    assert_browser_wrote_nothing,
    ended_completed,
    freight_daemon,
    freight_env,
    install_host,
    rpc_via_page,
    site,
    wait_for,
)

pytestmark = pytest.mark.browser

NOTES = "new Promise((resolve) => chrome.notifications.getAll(resolve))"


def duplicate_notes(b: Browser) -> list[str]:
    return [n for n in dict(b.ev(NOTES)) if n.startswith("freight-dup-")]


def downloads(b: Browser) -> list[dict[str, Any]]:
    return list(rpc_via_page(b, "list")["downloads"])


def test_a_link_clicked_again_is_offered_not_downloaded_and_again_only_when_asked(
    make_browser, freight_env, freight_daemon, site  # noqa: F811
) -> None:
    def before_launch(udd: Path) -> None:
        install_host(freight_env, "--browser", "chromium", "--user-data-dir", str(udd))

    b: Browser = make_browser(before_launch, extra_env=freight_env)
    wait_for(lambda: b.state()["status"]["state"] == "connected", timeout=30,
             what="the extension to reach the daemon")
    digest = site.add("twice.bin", 1024 * 1024)
    page = b.ctx.new_page()
    page.goto(f"{site.base}/page.html")
    link = f"#f{sorted(site.files).index('twice.bin')}"
    page.click(link)
    first = wait_for(lambda: downloads(b), what="the daemon to take the first click")[0]
    done = ended_completed(b, first["id"])
    assert hashlib.sha256(Path(done["path"]).read_bytes()).hexdigest() == digest
    assert duplicate_notes(b) == []

    page.click(link)
    (note,) = wait_for(lambda: duplicate_notes(b), what="the already-downloaded notification")
    assert note.startswith(f"freight-dup-{first['id']}-")
    assert [d["id"] for d in downloads(b)] == [first["id"]]  # nothing added
    assert_browser_wrote_nothing(b)  # and the browser did not download it either

    again = b.ev(f"freight.chooseDuplicate({note!r}, 1)")  # "Download again"
    assert again != first["id"]
    copy = ended_completed(b, again)
    assert copy["path"] != done["path"]
    assert hashlib.sha256(Path(copy["path"]).read_bytes()).hexdigest() == digest
    assert duplicate_notes(b) == []  # the choice closed it
    assert_browser_wrote_nothing(b)
