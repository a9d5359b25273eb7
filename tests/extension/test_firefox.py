"""The extension in firefox-esr, driven over WebDriver BiDi (no geckodriver offline).

Firefox has no downloads.onDeterminingFilename: the extension cancels in onCreated, asks
Freight, and re-issues the download when Freight cannot take it. With no native host installed
here, that re-issue path must leave exactly one complete file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import EXTENSION, need, wait_for

pytestmark = pytest.mark.browser

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
GECKO_ID = "freight@freight.dev"
FIXED_UUID = "3d4c1a7e-5f0b-4b8e-9c51-6a2f0e7d9b10"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bidi:
    """A minimal WebDriver BiDi client: one command at a time, events kept aside."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def cmd(self, method: str, **params: Any) -> Any:
        id_ = next(self.ids)
        self.ws.send(json.dumps({"id": id_, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == id_:
                if msg.get("type") == "error":
                    raise AssertionError(f"{method}: {msg.get('error')}: {msg.get('message')}")
                return msg["result"]
            self.events.append(msg)


@pytest.fixture
def firefox(tmp_path: Path) -> Iterator[tuple[Bidi, Path]]:
    need(FIREFOX is not None, "firefox-esr is missing (apt-get install firefox-esr)")
    profile = tmp_path / "ff-profile"
    downloads = tmp_path / "ff-downloads"
    profile.mkdir()
    downloads.mkdir()
    prefs = {
        "browser.download.folderList": 2,
        "browser.download.dir": str(downloads),
        "browser.download.useDownloadDir": True,
        "browser.download.always_ask_before_handling_new_types": False,
        "browser.download.alwaysOpenPanel": False,
        "extensions.webextensions.uuids": json.dumps({GECKO_ID: FIXED_UUID}),
        "browser.shell.checkDefaultBrowser": False,
        "network.proxy.type": 0,
    }
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())
    )
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "MOZ_HEADLESS": "1"}
    proc = subprocess.Popen(
        [FIREFOX, "--headless", f"--remote-debugging-port={port}", "--profile", str(profile),
         "--no-remote", "about:blank"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def ready() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(ready, timeout=30, what="Firefox's remote agent")
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{port}/session", proxy=None, max_size=None,
                     open_timeout=20) as ws:
            bidi = Bidi(ws)
            bidi.cmd("session.new", capabilities={})
            yield bidi, downloads
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_firefox_loads_the_variant_and_never_loses_a_download(firefox, site) -> None:
    bidi, downloads = firefox
    digest = site.add("slow-ff.bin", 400_000)
    res = bidi.cmd("webExtension.install",
                   extensionData={"type": "path", "path": str(EXTENSION)})
    assert res["extension"] == GECKO_ID
    ctx = bidi.cmd("browsingContext.getTree")["contexts"][0]["context"]
    bidi.cmd("browsingContext.navigate", context=ctx, url=f"{site.base}/page.html", wait="complete")
    time.sleep(1.0)  # let the background script finish starting
    bidi.cmd("script.evaluate", expression="document.getElementById('f0').click()",
             target={"context": ctx}, awaitPromise=False)
    path = downloads / "slow-ff.bin"

    def done() -> bool:
        names = [p.name for p in downloads.iterdir()]
        return path.exists() and not any(n.endswith(".part") for n in names) \
            and hashlib.sha256(path.read_bytes()).hexdigest() == digest
    wait_for(done, timeout=30, what="the re-issued download to complete")
    time.sleep(1.0)
    # Exactly one copy: the cancelled original left nothing, the hand-back was not re-captured.
    assert sorted(p.name for p in downloads.iterdir()) == ["slow-ff.bin"]
    # Two fetches: the browser's own (cancelled by the extension) and the hand-back. An inert
    # extension would leave one.
    assert len(site.hits("/files/slow-ff.bin")) == 2
