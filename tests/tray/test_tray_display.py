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
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from freight.tray import model as tray_icon
from freight.tray.icon import Tray, TraySnapshot, available
from freight.tray.model import IconState
from xsession import XSession, missing_tools, x_session

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUTPUT = ROOT / "test-output" / "tray"

DOWNLOADING = TraySnapshot(
    active=1,
    queued=2,
    speed=13_002_342,  # 12.4 MiB/s
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

    def clear_completed(self) -> None:
        self._record("clear_completed")

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
    # dbus-run-session does not forward signals: the test signals this process directly.
    args.calls.with_suffix(".pid").write_text(str(os.getpid()))
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


def _color_count(image, rgb, box, tolerance: int = 24) -> int:  # type: ignore[no-untyped-def]
    """Pixels in ``box`` close to ``rgb``: the gtk backends scale the 64 px icon to the tray's
    size, which blends the edges of small areas such as the progress bar."""
    region = image.crop(box)
    return sum(
        1
        for pixel in region.get_flattened_data()
        if max(abs(a - b) for a, b in zip(pixel, rgb)) <= tolerance
    )


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


@contextmanager
def running_tray(tmp_path: Path, backend: str) -> Iterator[tuple[XSession, Path]]:
    """An X session with trayer, and the tray process (under dbus-run-session) on it."""
    _need_display_tools()
    with x_session(tmp_path / "x") as xs:
        # available() probes GTK in its own process: ask on the test's display.
        check = subprocess.run(
            [sys.executable, __file__, "--check", "--backend", backend],
            env=xs.env, capture_output=True, text=True, timeout=60,
        )
        assert check.returncode == 0, check.stderr
        ok, reason, _chosen = json.loads(check.stdout.strip().splitlines()[-1])
        if not ok:
            message = f"{backend} backend unavailable: {reason} (pip install 'freight[tray-gtk]')"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        calls = tmp_path / "calls.jsonl"
        log_path = tmp_path / "tray.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["dbus-run-session", "--", sys.executable, __file__, "--calls", str(calls),
                 "--backend", backend],
                env=xs.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                yield xs, calls
                assert process.poll() is None, log_path.read_text()
            finally:
                pidfile = calls.with_suffix(".pid")
                if pidfile.exists():
                    with suppress(ProcessLookupError):  # it died: the log says why below
                        os.kill(int(pidfile.read_text()), signal.SIGTERM)
                else:
                    process.terminate()
                try:
                    code = process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    code = None
        # The tray ends cleanly on SIGTERM (the daemon's staged shutdown calls stop()).
        assert code == 0, log_path.read_text()


def docked_icon(xs: XSession, title: str) -> dict[str, Any]:
    """The tray icon's window inside trayer's panel, found by its title."""

    def find() -> dict[str, Any] | None:
        for window in xs.windows():
            if window["name"] == title and window["depth"] >= 2:
                return window
        return None

    icon = xs.wait_for(find, 20, f"a docked window titled {title!r}")
    assert icon["y"] < 40 and icon["x"] + icon["width"] > 800 - 80, icon  # top right
    return icon


def box_of(window: dict[str, Any]) -> tuple[int, int, int, int]:
    x, y = window["x"], window["y"]
    return x, y, x + window["width"], y + window["height"]


def assert_icon_drawn(xs: XSession, icon: dict[str, Any], state: IconState, shot: Path) -> None:
    """The state's colour covers a good part of the icon's window and appears nowhere else;
    a downloading icon also shows its progress bar."""
    color = tray_icon.COLORS[state][:3]
    seen: dict[str, Any] = {}

    def drawn() -> bool:
        # trayer may still resize the icon's window while it docks (a 16 px wide slot first
        # scales the bar away): read its geometry anew each time.
        now = next((w for w in xs.windows() if w["id"] == icon["id"]), icon)
        image = xs.screenshot(shot)
        box = box_of(now)
        seen.update(window=now, state=_color_count(image, color, box),
                    bar=_color_count(image, tray_icon.BAR_FILL[:3], box))
        if seen["state"] <= now["width"] * now["height"] // 5:
            return False
        return state is not IconState.DOWNLOADING or seen["bar"] > 0

    try:
        xs.wait_for(drawn, 10, f"the {state} icon to be drawn")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen}") from None
    image = xs.screenshot(shot)
    assert _color_count(image, color, (0, 40, image.width, image.height)) == 0


def open_menu(xs: XSession, icon: dict[str, Any], backend: str) -> dict[str, Any]:
    # appindicator opens its menu on a left click, gtk's status icon on a right click.
    button = 1 if backend == "appindicator" else 3
    x0, y0, x1, y1 = box_of(icon)
    xs.click((x0 + x1) // 2, (y0 + y1) // 2, button)

    def menu_window() -> dict[str, Any] | None:
        menus = [
            w for w in xs.windows()
            if w["override_redirect"] and w["height"] > 100 and w["depth"] == 0
        ]
        return menus[0] if menus else None

    menu = xs.wait_for(menu_window, 10, "the tray menu to open")
    # The pointer left on the icon brings up its tooltip, which GTK draws over the menu's top
    # rows: move it to the far corner (the open menu keeps its grab; nothing is clicked).
    xs.xdotool("mousemove", "--sync", "1", "1")
    time.sleep(0.5)  # mapped is not yet painted
    return menu


def click_menu_item(
    xs: XSession, menu: dict[str, Any], snap: TraySnapshot, text: str, shot: Path
) -> None:
    """Click the item showing ``text``: its row is found from the model and the pixels."""
    model = tray_icon.menu_model(snap, can_prompt=True)
    texts = [entry.text for entry in model if not entry.separator]

    def drawn_rows() -> list[tuple[int, int]] | None:
        # A menu that has just mapped may still be drawing its last rows (a loaded machine
        # shows it): look again until every item has its row.
        bands = _text_rows(xs.screenshot(shot).crop(box_of(menu)))
        return bands if len(bands) == len(texts) else None

    bands = xs.wait_for(drawn_rows, 10, f"the menu to show its {len(texts)} items: {texts}")
    top, bottom = bands[texts.index(text)]
    xs.click(menu["x"] + menu["width"] // 3, menu["y"] + (top + bottom) // 2)


def wait_for_call(xs: XSession, calls: Path, method: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((c for c in _calls(calls) if c["method"] == method), None)

    return xs.wait_for(find, 10, f"the controller to receive {method}")


@pytest.mark.display
@pytest.mark.parametrize("backend", ["appindicator", "gtk"])
def test_tray_docks_shows_title_and_pause_all_click_reaches_daemon(tmp_path, backend):
    with running_tray(tmp_path, backend) as (xs, calls):
        title = tray_icon.title(DOWNLOADING)
        assert title == "Freight — 1 active, 12.4 MiB/s, 2 queued"
        icon = docked_icon(xs, title)
        assert_icon_drawn(xs, icon, IconState.DOWNLOADING, OUTPUT / f"docked-{backend}.png")

        menu = open_menu(xs, icon, backend)
        click_menu_item(xs, menu, DOWNLOADING, "Pause all", OUTPUT / f"menu-{backend}.png")
        wait_for_call(xs, calls, "pause_all")
        assert [c["method"] for c in _calls(calls)] == ["pause_all"]

        # The poll thread picks the new state up: title and colour turn to "paused".
        paused = docked_icon(xs, tray_icon.title(PAUSED))
        assert_icon_drawn(xs, paused, IconState.PAUSED, OUTPUT / f"paused-{backend}.png")


@pytest.mark.display
def test_add_from_clipboard_reads_the_x_clipboard(tmp_path):
    url = "https://downloads.example.test/debian-12.iso"
    with running_tray(tmp_path, "appindicator") as (xs, calls):
        # Another X client owns the CLIPBOARD selection, as a browser would after "Copy link".
        owner = subprocess.Popen(
            [sys.executable, "-c", CLIPBOARD_OWNER, url],
            env=xs.env, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert owner.stdout is not None and owner.stdout.readline().strip() == "owned"
            icon = docked_icon(xs, tray_icon.title(DOWNLOADING))
            menu = open_menu(xs, icon, "appindicator")
            shot = OUTPUT / "menu-clipboard.png"
            click_menu_item(xs, menu, DOWNLOADING, "Add from clipboard", shot)
            call = wait_for_call(xs, calls, "add_url")
            assert call["args"] == [url]
        finally:
            owner.terminate()
            owner.wait(10)


CLIPBOARD_OWNER = """
import sys
import gi
gi.require_version("Gtk", "3.0")
from gi.repository import Gdk, Gtk
clipboard = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD)
clipboard.set_text(sys.argv[1], -1)
print("owned", flush=True)
Gtk.main()
"""


@pytest.mark.display
def test_xorg_backend_docks_draws_and_takes_clicks(tmp_path):
    """The patched xorg backend: it docks, draws sharp pixels, and a left click arrives
    (it has no menu: a click runs the default entry, Open downloads folder)."""
    with running_tray(tmp_path, "xorg") as (xs, calls):
        icon = docked_icon(xs, tray_icon.title(DOWNLOADING))
        assert_icon_drawn(xs, icon, IconState.DOWNLOADING, OUTPUT / "docked-xorg.png")
        x0, y0, x1, y1 = box_of(icon)
        xs.click((x0 + x1) // 2, (y0 + y1) // 2, 1)
        wait_for_call(xs, calls, "open_folder")
        assert [c["method"] for c in _calls(calls)] == ["open_folder"]


if __name__ == "__main__":
    raise SystemExit(harness(sys.argv[1:]))
