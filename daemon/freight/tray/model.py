"""The tray's sans-I/O core: a snapshot of the daemon in, an image, a title and a menu out.

Nothing here touches a display, a thread or a clock. :mod:`freight.tray.icon` feeds
:class:`TraySnapshot` values in about once a second and hands the results to pystray; the
tests feed snapshots and look at pixels, strings and plain menu entries.

Rates are written by :mod:`freight.units`, as in the CLI and the popup: binary multiples with
IEC names, so that "2M" typed in the CLI and "2.0 MiB/s" shown here are the same number.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

from freight.errors import InputError
from freight.units import format_rate

# --------------------------------------------------------------------------------------------
# What the daemon tells the tray


@dataclass(frozen=True)
class TraySnapshot:
    """The daemon's state as the tray shows it. Counts are downloads in that state."""

    active: int = 0
    queued: int = 0
    paused: int = 0
    failed: int = 0  # failed or needs_refresh: both want the user's attention
    completed: int = 0  # records "Clear completed" would forget (their files stay)
    speed: float = 0.0  # total bytes/s over all active downloads
    progress: float | None = None  # overall done/size of the active downloads, 0..1; None: unknown
    #: A few active downloads as (id, name, percent 0..100 or None when the size is unknown).
    downloads: tuple[tuple[int, str, float | None], ...] = ()
    global_limit: int | None = None  # bytes/s, None: unlimited
    capture: bool = True  # the extension hands browser downloads to Freight
    download_dir: str = ""
    schedule: str = ""  # what the schedule does now, in words (schedule_words); "": nothing


class IconState(enum.StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    ERROR = "error"


def icon_state(snap: TraySnapshot) -> IconState:
    """Running transfers win (the user wants to see progress); then trouble; then paused."""
    if snap.active > 0:
        return IconState.DOWNLOADING
    if snap.failed > 0:
        return IconState.ERROR
    if snap.paused > 0:
        return IconState.PAUSED
    return IconState.IDLE


# --------------------------------------------------------------------------------------------
# The image

#: Background colour per state (opaque RGBA). Tests and the display test look for these.
COLORS: dict[IconState, tuple[int, int, int, int]] = {
    IconState.IDLE: (84, 98, 117, 255),  # slate
    IconState.DOWNLOADING: (28, 113, 216, 255),  # blue
    IconState.PAUSED: (229, 165, 10, 255),  # amber
    IconState.ERROR: (192, 28, 40, 255),  # red
}
GLYPH = (255, 255, 255, 255)
BAR_TRACK = (16, 42, 80, 255)
BAR_FILL = (87, 227, 137, 255)  # green
BADGE = COLORS[IconState.ERROR]
TRANSPARENT = (0, 0, 0, 0)

MIN_SIZE, MAX_SIZE = 16, 256


def bar_geometry(size: int) -> tuple[int, int, int, int]:
    """The progress bar's box (left, top, right, bottom), inclusive, in a ``size`` icon."""
    margin = max(1, size // 8)
    height = max(3, size // 6)
    return margin, size - margin - height, size - 1 - margin, size - 1 - margin


def render(snap: TraySnapshot, size: int = 64) -> Image.Image:
    """Draw the icon for ``snap`` at exactly ``size``×``size`` pixels (RGBA).

    Drawn at the target size, not scaled down from a large one, and without anti-aliasing:
    every pixel is one of the palette colours above or fully transparent, so the 16 px icon
    stays sharp instead of turning into a blur.
    """
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"icon size must be an integer from {MIN_SIZE} to {MAX_SIZE}: {size!r}")
    state = icon_state(snap)
    image = Image.new("RGBA", (size, size), TRANSPARENT)
    draw = ImageDraw.Draw(image)
    radius = max(2, size // 6)
    draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=radius, fill=COLORS[state])

    show_bar = state is IconState.DOWNLOADING and snap.progress is not None
    # The glyph sits in the area above the bar when a bar is drawn, else in the whole icon.
    top = max(1, size // 8)
    bottom = bar_geometry(size)[1] - max(1, size // 16) if show_bar else size - 1 - top
    _glyph(draw, state, size, top, bottom)

    if show_bar:
        assert snap.progress is not None
        left, btop, right, bbottom = bar_geometry(size)
        draw.rectangle((left, btop, right, bbottom), fill=BAR_TRACK)
        fraction = min(1.0, max(0.0, snap.progress))
        filled = round(fraction * (right - left + 1))
        if filled > 0:
            draw.rectangle((left, btop, left + filled - 1, bbottom), fill=BAR_FILL)
    if snap.failed > 0 and state is not IconState.ERROR:
        # Trouble while something else is going on: a red dot with a white ring, top right.
        d = max(5, size // 3)
        draw.ellipse((size - d, 0, size - 1, d - 1), fill=GLYPH)
        ring = max(1, d // 6)
        draw.ellipse((size - d + ring, ring, size - 1 - ring, d - 1 - ring), fill=BADGE)
    return image


def _glyph(draw: ImageDraw.ImageDraw, state: IconState, size: int, top: int, bottom: int) -> None:
    cx = size // 2
    height = bottom - top + 1
    if state is IconState.PAUSED:
        w = max(2, size // 7)
        gap = max(2, size // 7)
        left = cx - gap // 2 - w
        draw.rectangle((left, top + height // 8, left + w - 1, bottom - height // 8), fill=GLYPH)
        right = cx + (gap - gap // 2)
        draw.rectangle((right, top + height // 8, right + w - 1, bottom - height // 8), fill=GLYPH)
    elif state is IconState.ERROR:
        w = max(2, size // 7)
        dot = max(2, w)
        left = cx - w // 2
        draw.rectangle((left, top, left + w - 1, bottom - dot - max(1, dot // 2) - 1), fill=GLYPH)
        draw.rectangle((left, bottom - dot + 1, left + w - 1, bottom), fill=GLYPH)
    else:
        # A down arrow: a shaft and a triangular head, on whole pixels.
        shaft = max(2, size // 7)
        head_h = max(3, height * 5 // 11)
        head_half = max(3, size * 5 // 16)
        left = cx - shaft // 2
        draw.rectangle((left, top, left + shaft - 1, bottom - head_h), fill=GLYPH)
        apex_x = left + (shaft - 1) / 2
        draw.polygon(
            [
                (apex_x - head_half, bottom - head_h + 1),
                (apex_x + head_half, bottom - head_h + 1),
                (apex_x, bottom),
            ],
            fill=GLYPH,
        )


# --------------------------------------------------------------------------------------------
# The title


def title(snap: TraySnapshot) -> str:
    """The tooltip/title: ``Freight — 3 active, 12.4 MiB/s, 2 queued`` or ``Freight — idle``."""
    parts: list[str] = []
    if snap.active:
        parts += [f"{snap.active} active", format_rate(snap.speed)]
    if snap.queued:
        parts.append(f"{snap.queued} queued")
    if snap.paused:
        parts.append(f"{snap.paused} paused")
    if snap.failed:
        parts.append(f"{snap.failed} failed")
    text = "Freight — " + (", ".join(parts) if parts else "idle")
    return f"{text}; {snap.schedule}" if snap.schedule else text


def schedule_words(report: dict[str, Any] | None) -> str:
    """``status``'s ``schedule`` (daemon/timekeeper.py) for the title: a held queue first,
    else a window's rate, each with the time it ends; "" when it does nothing now."""
    if not report:
        return ""
    def until(key: str) -> str:
        return f" until {report[key][-5:]}" if report.get(key) else ""

    if report.get("held"):
        return f"queue held{until('queue_change')}"
    if report.get("window_rate") is not None and report.get("rate") is not None:
        # The rate in force: the user's limit may be lower than the window's.
        return f"scheduled {format_rate(report['rate'])}{until('rate_change')}"
    return ""


# --------------------------------------------------------------------------------------------
# The menu, as plain data


@dataclass(frozen=True)
class Action:
    """What a menu entry asks for. ``kind`` names a :class:`freight.tray.icon.TrayController` call
    (or ``add_from_clipboard``, which the tray resolves by reading the clipboard first)."""

    kind: str
    arg: Any = None


@dataclass(frozen=True)
class MenuEntry:
    text: str
    action: Action | None = None
    submenu: tuple[MenuEntry, ...] = ()
    checked: bool | None = None  # None: not a check item
    radio: bool = False
    enabled: bool = True
    default: bool = False  # the action of a plain click on the icon where the backend has one
    separator: bool = False


SEPARATOR = MenuEntry("", separator=True)

_MIB = 1024 * 1024
#: Speed limit presets in bytes/s.
LIMIT_PRESETS: tuple[int, ...] = (512 * 1024, 1 * _MIB, 2 * _MIB, 5 * _MIB, 10 * _MIB)
#: How many active downloads the menu lists at most.
MAX_LISTED = 5
_NAME_WIDTH = 40


def short_name(name: str, width: int = _NAME_WIDTH) -> str:
    """Keep the start and the extension: ``a-very-long-na….iso``. Control characters go."""
    clean = "".join(ch if ch.isprintable() else " " for ch in name).strip() or "(unnamed)"
    if len(clean) <= width:
        return clean
    stem, dot, ext = clean.rpartition(".")
    tail = dot + ext if dot and 0 < len(ext) <= 8 else ""
    return clean[: width - 1 - len(tail)] + "…" + tail


def format_limit(limit: int | None) -> str:
    return "Unlimited" if limit is None else format_rate(limit)


def menu_model(
    snap: TraySnapshot,
    *,
    presets: tuple[int, ...] = LIMIT_PRESETS,
    can_prompt: bool = False,
) -> tuple[MenuEntry, ...]:
    """The whole tray menu for ``snap``.

    ``can_prompt``: the backend can ask the user for text (a custom speed limit). Quitting
    while downloads run asks for confirmation through a submenu, which every backend with a
    menu can show.
    """
    entries: list[MenuEntry] = []
    for download_id, name, percent in snap.downloads[:MAX_LISTED]:
        shown = "…" if percent is None else f"{min(100, max(0, int(percent)))} %"
        entries.append(
            MenuEntry(f"{short_name(name)} — {shown}", Action("open_download", download_id))
        )
    more = snap.active - min(len(snap.downloads), MAX_LISTED)
    if more > 0:
        entries.append(MenuEntry(f"and {more} more active", enabled=False))
    if entries:
        entries.append(SEPARATOR)

    running = snap.active + snap.queued > 0
    entries.append(MenuEntry("Pause all", Action("pause_all"), enabled=running))
    entries.append(
        MenuEntry("Resume all", Action("resume_all"), enabled=snap.paused + snap.failed > 0)
    )

    limits: list[MenuEntry] = [
        MenuEntry(
            "Unlimited",
            Action("set_global_limit", None),
            checked=snap.global_limit is None,
            radio=True,
        )
    ]
    for preset in presets:
        limits.append(
            MenuEntry(
                format_rate(preset),
                Action("set_global_limit", preset),
                checked=snap.global_limit == preset,
                radio=True,
            )
        )
    if snap.global_limit is not None and snap.global_limit not in presets:
        # A limit set elsewhere (CLI, settings): shown, checked, so the radio group stays true.
        limits.append(
            MenuEntry(
                f"Custom: {format_rate(snap.global_limit)}",
                Action("set_global_limit", snap.global_limit),
                checked=True,
                radio=True,
            )
        )
    if can_prompt:
        limits += [SEPARATOR, MenuEntry("Custom…", Action("prompt_global_limit"))]
    limit_text = f"Speed limit: {format_limit(snap.global_limit)}"
    entries.append(MenuEntry(limit_text, submenu=tuple(limits)))

    entries.append(
        MenuEntry(
            "Capture from browser",
            submenu=(
                MenuEntry("On", Action("set_capture", True), checked=snap.capture, radio=True),
                MenuEntry(
                    "Off", Action("set_capture", False), checked=not snap.capture, radio=True
                ),
            ),
        )
    )
    entries.append(SEPARATOR)
    entries.append(MenuEntry("Open downloads folder", Action("open_folder"), default=True))
    entries.append(MenuEntry("Add from clipboard", Action("add_from_clipboard")))
    # Forgets the records only, never a file (the API's ``clear``).
    entries.append(MenuEntry(
        f"Clear completed ({snap.completed})" if snap.completed else "Clear completed",
        Action("clear_completed"), enabled=snap.completed > 0))
    entries.append(SEPARATOR)
    if snap.active > 0:
        n = snap.active
        entries.append(
            MenuEntry(
                "Quit",
                submenu=(
                    MenuEntry(
                        # Quitting checkpoints them; the next start resumes them.
                        f"Quit ({n} active download"
                        f"{'s resume' if n != 1 else ' resumes'} on the next start)",
                        Action("quit"),
                    ),
                ),
            )
        )
    else:
        entries.append(MenuEntry("Quit", Action("quit")))
    return tuple(entries)


def find_entry(entries: tuple[MenuEntry, ...], text: str) -> MenuEntry:
    """The first entry (depth first) whose text is ``text``; KeyError if none."""
    for entry in entries:
        if entry.text == text:
            return entry
        try:
            return find_entry(entry.submenu, text)
        except KeyError:
            pass
    raise KeyError(text)


# --------------------------------------------------------------------------------------------
# The clipboard

MAX_URL_LENGTH = 8192


def clipboard_url(text: str | None) -> str:
    """The http(s) URL held by the clipboard text, or InputError saying why it is not one."""
    if text is None or not text.strip():
        raise InputError("the clipboard is empty")
    candidate = text.strip()
    if len(candidate) > MAX_URL_LENGTH:
        raise InputError(f"the clipboard holds {len(candidate)} characters, not a URL")
    if any(ch.isspace() for ch in candidate) or not candidate.isprintable():
        raise InputError("the clipboard holds text, not a single URL")
    try:
        parts = urlsplit(candidate)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise InputError(f"the clipboard holds a malformed URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError("the clipboard holds no http or https URL")
    if not parts.hostname or not port_ok:
        raise InputError("the URL on the clipboard has no host")
    return candidate

