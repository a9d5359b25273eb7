"""The tray on a real X server: Xvfb, Debian's `trayer` as tray host, `dbus-run-session`.

The tray runs in its own process (as in the daemon: pystray's loop on the main thread) with
:class:`RecordingController`, which plays a daemon with one running download and records every
call. We check the docked icon's pixels in a root-window screenshot, the title on the icon's
window, and that an xdotool click on "Pause all" in the opened menu reaches the controller and
turns the icon and title to "paused".

Run as a script, this file is that tray process:
``python test_tray_display.py --calls FILE [--backend NAME]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from freight import tray_icon
from freight.tray import Tray, TraySnapshot, available
from freight.tray_icon import IconState

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUTPUT = ROOT / "test-output" / "tray"

DOWNLOADING = TraySnapshot(
    active=1,
    queued=2,
    speed=13_002_342,  # 12.4 MB/s
    progress=0.42,
    downloads=((7, "debian-12.8.0-amd64-netinst.iso", 42.0),),
    global_limit=None,
    capture=True,
    download_dir="/tmp/freight-downloads",
)
PAUSED = TraySnapshot(paused=3, capture=True, download_dir="/tmp/freight-downloads")


class RecordingController:
    """A stand-in daemon: answers snapshots, records every call as a JSON line."""

    def __init__(self, calls: Path) -> None:
        self._calls = calls
        self._lock = threading.Lock()
        self._snap = DOWNLOADING
        self.on_quit = lambda: None

    def _record(self, method: str, *args: object) -> None:
        with self._lock, self._calls.open("a") as out:
            out.write(json.dumps({"method": method, "args": list(args)}) + "\n")

    def snapshot(self) -> TraySnapshot:
        with self._lock:
            return self._snap

    def pause_all(self) -> None:
        self._record("pause_all")
        with self._lock:
            self._snap = PAUSED

    def resume_all(self) -> None:
        self._record("resume_all")
        with self._lock:
            self._snap = DOWNLOADING

    def set_global_limit(self, bytes_per_s: int | None) -> None:
        self._record("set_global_limit", bytes_per_s)

    def set_capture(self, enabled: bool) -> None:
        self._record("set_capture", enabled)

    def add_url(self, url: str) -> None:
        self._record("add_url", url)

    def open_download(self, download_id: int) -> None:
        self._record("open_download", download_id)

    def open_folder(self) -> None:
        self._record("open_folder")

    def quit(self) -> None:
        self._record("quit")
        self.on_quit()


def harness(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=Path)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--check", action="store_true", help="print available() and exit")
    args = parser.parse_args(argv)
    if args.check:
        print(json.dumps(available(args.backend)))
        return 0
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    controller = RecordingController(args.calls)
    tray = Tray(controller, backend=args.backend)
    controller.on_quit = tray.stop
    signal.signal(signal.SIGTERM, lambda *_: tray.stop())
    ran = tray.run()
    print(f"tray ended ran={ran} backend={tray.backend}", file=sys.stderr, flush=True)
    return 0 if ran else 3


# --------------------------------------------------------------------------------------------
# The tests


def _need_display_tools() -> None:
    from xsession import missing_tools

    missing = missing_tools()
    if missing:
        message = (
            f"tray display test needs {', '.join(missing)} "
            "(apt: xvfb trayer xdotool imagemagick dbus)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _calls(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _color_count(image, rgb, box) -> int:  # type: ignore[no-untyped-def]
    region = image.crop(box)
    return sum(1 for pixel in region.get_flattened_data() if pixel == rgb)


def _text_rows(menu_image) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Horizontal bands of a menu screenshot that hold text, top to bottom.

    Text (also a disabled item's grey) is darker than the menu's background; separators are
    one light line, dropped by the minimum height."""
    gray = menu_image.convert("L")
    width, height = gray.size
    pixels = gray.load()
    rows = [
        any(pixels[x, y] < 190 for x in range(4, width - 4)) for y in range(height)
    ]
    bands: list[tuple[int, int]] = []
    start = None
    for y, dark in enumerate(rows + [False]):
        if dark and start is None:
            start = y
        elif not dark and start is not None:
            bands.append((start, y - 1))
            start = None
    return [(top, bottom) for top, bottom in bands if bottom - top >= 3]


@pytest.mark.display
@pytest.mark.parametrize("backend", ["appindicator", "gtk"])
def test_tray_docks_shows_title_and_pause_all_click_reaches_daemon(tmp_path, backend):
    _need_display_tools()
    from xsession import x_session

    with x_session(tmp_path / "x") as xs:
        # available() probes GTK in its own process: ask on the test's display.
        check = subprocess.run(
            [sys.executable, __file__, "--check", "--backend", backend],
            env=xs.env, capture_output=True, text=True, timeout=60,
        )
        assert check.returncode == 0, check.stderr
        ok, reason, chosen = json.loads(check.stdout.strip().splitlines()[-1])
        if not ok:
            message = f"{backend} backend unavailable: {reason} (pip install 'freight[tray-gtk]')"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        calls = tmp_path / "calls.jsonl"
        log = (tmp_path / "tray.log").open("wb")
        tray = subprocess.Popen(
            ["dbus-run-session", "--", sys.executable, __file__, "--calls", str(calls),
             "--backend", backend],
            env=xs.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            title = tray_icon.title(DOWNLOADING)
            assert title == "Freight — 1 active, 12.4 MB/s, 2 queued"

            def icon_window():  # type: ignore[no-untyped-def]
                for window in xs.windows():
                    if window["name"] == title and window["depth"] >= 2:
                        return window
                return None

            icon = xs.wait_for(icon_window, 20, f"a docked window titled {title!r}")
            assert tray.poll() is None, (tmp_path / "tray.log").read_text()
            time.sleep(0.5)  # the first paint
            shot = xs.screenshot(OUTPUT / f"docked-{backend}.png")
            box = (icon["x"], icon["y"], icon["x"] + icon["width"], icon["y"] + icon["height"])
            # The icon is inside trayer's panel at the top right of the screen.
            assert box[1] < 40 and box[2] > shot.width - 80, box
            blue = tray_icon.COLORS[IconState.DOWNLOADING][:3]
            green = tray_icon.BAR_FILL[:3]
            area = icon["width"] * icon["height"]
            assert _color_count(shot, blue, box) > area // 5, "the downloading icon is not drawn"
            assert _color_count(shot, green, box) > 0, "the progress bar is not drawn"
            assert _color_count(shot, blue, (0, 40, shot.width, shot.height)) == 0

            # Open the menu: appindicator opens it on a left click, gtk on a right click.
            button = 1 if backend == "appindicator" else 3
            xs.click(box[0] + icon["width"] // 2, box[1] + icon["height"] // 2, button)

            def menu_window():  # type: ignore[no-untyped-def]
                menus = [
                    w for w in xs.windows()
                    if w["override_redirect"] and w["height"] > 100 and w["depth"] == 0
                ]
                return menus[0] if menus else None

            menu = xs.wait_for(menu_window, 10, "the tray menu to open")
            time.sleep(0.5)
            shot = xs.screenshot(OUTPUT / f"menu-{backend}.png")
            menu_img = shot.crop(
                (menu["x"], menu["y"], menu["x"] + menu["width"], menu["y"] + menu["height"])
            )
            model = tray_icon.menu_model(DOWNLOADING, can_prompt=True)
            texts = [entry.text for entry in model if not entry.separator]
            bands = _text_rows(menu_img)
            assert len(bands) == len(texts), (bands, texts)
            top, bottom = bands[texts.index("Pause all")]
            xs.click(menu["x"] + menu["width"] // 3, menu["y"] + (top + bottom) // 2)

            xs.wait_for(
                lambda: any(c["method"] == "pause_all" for c in _calls(calls)),
                10,
                "the controller to receive pause_all",
            )
            assert [c["method"] for c in _calls(calls)] == ["pause_all"]

            # The poll thread picks the new state up: title and colour turn to "paused".
            paused_title = tray_icon.title(PAUSED)
            paused = xs.wait_for(
                lambda: next((w for w in xs.windows() if w["name"] == paused_title), None),
                10,
                f"the title to become {paused_title!r}",
            )
            amber = tray_icon.COLORS[IconState.PAUSED][:3]

            def amber_drawn():  # type: ignore[no-untyped-def]
                shot = xs.screenshot(OUTPUT / f"paused-{backend}.png")
                box = (paused["x"], paused["y"], paused["x"] + paused["width"],
                       paused["y"] + paused["height"])
                return _color_count(shot, amber, box) > area // 5

            xs.wait_for(amber_drawn, 10, "the paused icon")
        finally:
            tray.send_signal(signal.SIGTERM)
            try:
                tray.wait(15)
            except subprocess.TimeoutExpired:
                tray.kill()
                tray.wait()
            log.close()


if __name__ == "__main__":
    raise SystemExit(harness(sys.argv[1:]))
