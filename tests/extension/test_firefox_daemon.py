"""End to end in firefox-esr: the extension (over WebDriver BiDi) + the real native host
registered by `freight install --browser firefox` + the real daemon, all under a throwaway
HOME and FREIGHT_HOME, against the fault server.

Firefox reads native host manifests from ~/.mozilla/native-messaging-hosts/ (per user) and
/usr/lib/mozilla/native-messaging-hosts/ (system); it starts the host with the manifest's path
and our add-on id as arguments. Firefox has no onDeterminingFilename: the extension cancels
the browser's download in downloads.onCreated and only then hands it to the daemon.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (  # noqa: F401 (fixtures)
    EXTENSION,
    GECKO_ID,
    Daemon,
    firefox_profile,
    freight_daemon,
    freight_env,
    install_host,
    sha256_file,
    start_firefox,
    wait_for,
)
from faultserver import FaultServer, make_data

pytestmark = pytest.mark.browser

HOST_NAME = "dev.freight.host"


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


def host_log(env: dict[str, str]) -> str:
    logs = list(Path(env["FREIGHT_HOME"]).rglob("freight-host.log"))
    return "".join(p.read_text(errors="replace") for p in logs)


def test_firefox_hands_a_click_to_the_real_daemon(
    start_firefox, freight_env, freight_daemon, srv, tmp_path  # noqa: F811
) -> None:
    daemon: Daemon = freight_daemon
    # The real registration, in the HOME Firefox will run with.
    out = install_host(freight_env, "--browser", "firefox")
    manifest_path = Path(freight_env["HOME"]) / ".mozilla" / "native-messaging-hosts" / \
        f"{HOST_NAME}.json"
    assert str(manifest_path) in out, out
    manifest = json.loads(manifest_path.read_text())
    assert manifest["allowed_extensions"] == [GECKO_ID]
    assert manifest["type"] == "stdio" and Path(manifest["path"]).is_file()

    profile, downloads = tmp_path / "ff-profile", tmp_path / "ff-downloads"
    downloads.mkdir()
    firefox_profile(profile, downloads)
    bidi = start_firefox(profile, freight_env)
    res = bidi.cmd("webExtension.install", extensionData={"type": "path", "path": str(EXTENSION)})
    assert res["extension"] == GECKO_ID

    # The background script connects at start: Firefox launched our host for our add-on.
    wait_for(lambda: GECKO_ID in host_log(freight_env), timeout=20,
             what="Firefox to start freight-host for the add-on")

    size = 2 * 1024 * 1024
    data = make_data(size, seed=11)
    # Paced, so that Firefox cannot finish its own copy before the extension cancels it.
    file_url = srv.add("/files/ff-big.bin", data=data, etag="f1", rate=512 * 1024,
                       content_disposition='attachment; filename="ff-big.bin"')
    page_url = srv.add("/page.html", content_type="text/html; charset=utf-8", data=(
        f'<!doctype html><title>Files</title><a id="dl" href="{file_url}">ff-big.bin</a>'
    ).encode())
    ctx = bidi.cmd("browsingContext.getTree")["contexts"][0]["context"]
    bidi.cmd("browsingContext.navigate", context=ctx, url=page_url, wait="complete")
    bidi.cmd("script.evaluate", expression="document.getElementById('dl').click()",
             target={"context": ctx}, awaitPromise=False)

    def finished() -> dict[str, Any] | None:
        for d in daemon.downloads():
            if d["state"] in ("completed", "failed", "needs_refresh"):
                return d
        return None
    d = wait_for(finished, timeout=30, what="the daemon to finish the file Firefox handed over")
    assert d["state"] == "completed", d
    assert d["name"] == "ff-big.bin"
    assert sha256_file(Path(d["path"])) == hashlib.sha256(data).hexdigest()
    assert len(daemon.downloads()) == 1

    # Firefox's own download was cancelled: no file, no .part left behind, nothing re-issued.
    time.sleep(1.0)
    assert sorted(p.name for p in downloads.iterdir()) == []
    assert not list(Path(freight_env["HOME"]).rglob("ff-big.bin*"))  # nor anywhere else
    stats = srv.stats("/files/ff-big.bin")
    by_browser = [r for r in stats.log if "sec-fetch-mode" in r.headers]
    by_daemon = [r for r in stats.log if "sec-fetch-mode" not in r.headers]
    assert len(by_browser) == 1, [r.headers for r in stats.log]
    assert by_daemon and all(r.range is not None for r in by_daemon)
    # What the extension passed along: Firefox's user agent and the page as referrer.
    for r in by_daemon:
        assert "Firefox/" in r.headers.get("user-agent", ""), r.headers
        assert r.headers.get("referer") == page_url, r.headers
    assert stats.bytes_sent < 1.5 * size, stats.bytes_sent
