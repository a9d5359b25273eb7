"""The tray's sans-I/O core: snapshot → icon pixels, title text, menu model, clipboard URL."""

from __future__ import annotations

import pytest
from freight.errors import InputError
from freight.tray.model import (
    BADGE,
    BAR_FILL,
    BAR_TRACK,
    COLORS,
    GLYPH,
    LIMIT_PRESETS,
    MAX_LISTED,
    TRANSPARENT,
    Action,
    IconState,
    TraySnapshot,
    bar_geometry,
    clipboard_url,
    find_entry,
    format_rate,
    icon_state,
    menu_model,
    render,
    schedule_words,
    short_name,
    title,
)
from PIL import Image

MIB = 1024 * 1024
SIZES = list(range(16, 65))
SNAPS = {
    IconState.IDLE: TraySnapshot(),
    IconState.DOWNLOADING: TraySnapshot(active=2, speed=3 * MIB, progress=0.5),
    IconState.PAUSED: TraySnapshot(paused=4),
    IconState.ERROR: TraySnapshot(failed=1, paused=2),
}
PALETTE = {*COLORS.values(), GLYPH, BAR_TRACK, BAR_FILL, BADGE, TRANSPARENT}


def colors(image: Image.Image) -> dict[tuple[int, ...], int]:
    return {rgba: n for n, rgba in image.getcolors(image.width * image.height)}


# -- state ------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(IconState))
def test_icon_state_of_each_sample(state):
    assert icon_state(SNAPS[state]) is state


def test_running_downloads_win_over_trouble_and_pauses():
    assert icon_state(TraySnapshot(active=1, failed=3, paused=2)) is IconState.DOWNLOADING
    assert icon_state(TraySnapshot(queued=5)) is IconState.IDLE


# -- image ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", list(IconState))
def test_every_size_is_exact_and_crisp(state, size):
    image = render(SNAPS[state], size)
    assert image.size == (size, size) and image.mode == "RGBA"
    found = colors(image)
    # Crisp: no blended edge pixels, only the palette and full transparency.
    assert set(found) <= PALETTE, set(found) - PALETTE
    # The state's colour is the largest coloured area; the glyph is there too.
    assert max((c for c in found if c != TRANSPARENT), key=found.get) == COLORS[state]
    assert found[GLYPH] >= size // 2
    # Rounded corners are transparent, the middle of the left edge is not.
    assert image.getpixel((0, 0)) == TRANSPARENT
    assert image.getpixel((0, size // 2)) == COLORS[state]


@pytest.mark.parametrize("size", [16, 22, 24, 32, 48, 64])
@pytest.mark.parametrize("progress", [0.0, 0.1, 0.42, 0.5, 0.99, 1.0])
def test_progress_bar_fills_its_share_of_the_track(size, progress):
    image = render(TraySnapshot(active=1, progress=progress), size)
    left, top, right, bottom = bar_geometry(size)
    row = [image.getpixel((x, (top + bottom) // 2)) for x in range(left, right + 1)]
    filled = row.count(BAR_FILL)
    assert filled == round(progress * len(row))
    assert row.count(BAR_TRACK) == len(row) - filled
    assert row[: filled] == [BAR_FILL] * filled  # fills from the left


def test_progress_changes_the_image_and_unknown_progress_draws_no_bar():
    a = render(TraySnapshot(active=1, progress=0.2), 32)
    b = render(TraySnapshot(active=1, progress=0.8), 32)
    assert a.tobytes() != b.tobytes()
    none = colors(render(TraySnapshot(active=1, progress=None), 32))
    assert BAR_FILL not in none and BAR_TRACK not in none
    clamped = render(TraySnapshot(active=1, progress=7.0), 32)
    assert clamped.tobytes() == render(TraySnapshot(active=1, progress=1.0), 32).tobytes()


def test_paused_and_idle_draw_no_bar_even_with_progress():
    for snap in (TraySnapshot(paused=1, progress=0.5), TraySnapshot(progress=0.5)):
        assert BAR_FILL not in colors(render(snap, 32))


def test_failures_while_downloading_add_a_red_badge_top_right():
    size = 32
    image = render(TraySnapshot(active=1, failed=1, progress=0.3), size)
    assert image.getpixel((size - size // 6, size // 6)) == BADGE
    plain = render(TraySnapshot(active=1, progress=0.3), size)
    assert BADGE not in colors(plain)


@pytest.mark.parametrize("bad", [0, 15, 257, -3, 32.0, "32", None])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(InputError):
        render(TraySnapshot(), bad)


# -- title ------------------------------------------------------------------------------------


def test_title_as_in_the_issue():
    snap = TraySnapshot(active=3, queued=2, speed=int(12.4 * MIB))
    assert title(snap) == "Freight — 3 active, 12.4 MiB/s, 2 queued"


@pytest.mark.parametrize(
    ("snap", "text"),
    [
        (TraySnapshot(), "Freight — idle"),
        (TraySnapshot(paused=2), "Freight — 2 paused"),
        (TraySnapshot(failed=1, queued=1), "Freight — 1 queued, 1 failed"),
        (TraySnapshot(active=1, speed=0), "Freight — 1 active, 0 B/s"),
        (TraySnapshot(active=1, speed=1536, paused=1), "Freight — 1 active, 1.5 KiB/s, 1 paused"),
    ],
)
def test_title_variants(snap, text):
    assert title(snap) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (0, "0 B/s"),
        (1023, "1023 B/s"),
        (1024, "1.0 KiB/s"),
        (2 * MIB, "2.0 MiB/s"),
        (150 * MIB, "150 MiB/s"),
        (3 * 1024 * MIB, "3.0 GiB/s"),
        (5000 * 1024 * MIB, "4.9 TiB/s"),
        (-5, "0 B/s"),
    ],
)
def test_format_rate(rate, text):
    assert format_rate(rate) == text


# -- menu -------------------------------------------------------------------------------------


def texts(entries):
    return [e.text for e in entries if not e.separator]


def test_menu_while_downloading():
    snap = TraySnapshot(
        active=2,
        queued=1,
        downloads=((7, "debian.iso", 42.7), (9, "big.bin", None)),
        global_limit=2 * MIB,
    )
    model = menu_model(snap)
    assert texts(model) == [
        "debian.iso — 42 %",
        "big.bin — …",
        "Pause all",
        "Resume all",
        "Speed limit: 2.0 MiB/s",
        "Capture from browser",
        "Open downloads folder",
        "Add from clipboard",
        "Clear completed",
        "Quit",
    ]
    assert find_entry(model, "debian.iso — 42 %").action == Action("open_download", 7)
    assert find_entry(model, "Pause all").enabled
    assert not find_entry(model, "Resume all").enabled
    limits = find_entry(model, "Speed limit: 2.0 MiB/s").submenu
    checked = [e.text for e in limits if e.checked]
    assert checked == ["2.0 MiB/s"] and all(e.radio for e in limits)
    assert [e.action.arg for e in limits] == [None, *LIMIT_PRESETS]
    # Quitting with running downloads asks first, through a submenu.
    quit_entry = find_entry(model, "Quit")
    assert quit_entry.action is None
    assert quit_entry.submenu[0].text == "Quit (2 active downloads resume on the next start)"
    assert quit_entry.submenu[0].action == Action("quit")
    one = find_entry(menu_model(TraySnapshot(active=1)), "Quit").submenu[0].text
    assert one == "Quit (1 active download resumes on the next start)"
    assert [e.text for e in model if e.default] == ["Open downloads folder"]


def test_menu_when_idle_quits_at_once_and_pauses_nothing():
    model = menu_model(TraySnapshot(capture=False))
    assert texts(model)[0] == "Pause all"
    assert not find_entry(model, "Pause all").enabled
    assert find_entry(model, "Quit").action == Action("quit")
    capture = find_entry(model, "Capture from browser").submenu
    assert [(e.text, e.checked, e.action) for e in capture] == [
        ("On", False, Action("set_capture", True)),
        ("Off", True, Action("set_capture", False)),
    ]
    assert find_entry(model, "Unlimited").checked


def test_menu_shows_a_custom_limit_and_offers_a_prompt_only_when_possible():
    snap = TraySnapshot(global_limit=3 * MIB + 5)
    limits = find_entry(menu_model(snap), "Speed limit: 3.0 MiB/s").submenu
    assert [e.text for e in limits if e.checked] == ["Custom: 3.0 MiB/s"]
    assert "Custom…" not in texts(limits)
    limits = find_entry(menu_model(snap, can_prompt=True), "Speed limit: 3.0 MiB/s").submenu
    assert find_entry(limits, "Custom…").action == Action("prompt_global_limit")


def test_menu_lists_a_few_downloads_and_counts_the_rest():
    downloads = tuple((i, f"file{i}.bin", float(i)) for i in range(8))
    model = menu_model(TraySnapshot(active=12, downloads=downloads))
    listed = [e for e in model if e.action and e.action.kind == "open_download"]
    assert len(listed) == MAX_LISTED
    more = find_entry(model, f"and {12 - MAX_LISTED} more active")
    assert not more.enabled and more.action is None


def test_long_and_hostile_names_are_shortened_and_cleaned():
    assert short_name("a" * 100 + ".iso") == "a" * 35 + "….iso"
    assert len(short_name("x" * 100)) == 40
    assert short_name("evil\nname\x1b[31m.txt") == "evil name [31m.txt"
    assert short_name("   ") == "(unnamed)"
    assert menu_model(TraySnapshot(active=1, downloads=((1, "a", 250.0),)))[0].text == "a — 100 %"


def test_find_entry_raises_for_missing_text():
    with pytest.raises(KeyError):
        find_entry(menu_model(TraySnapshot()), "no such entry")


# -- clipboard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["https://example.test/a.iso", "  http://127.0.0.1:8080/f?x=1#y \n", "HTTPS://H/x"],
)
def test_clipboard_urls_accepted(text):
    assert clipboard_url(text) == text.strip()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("ftp://host/file", "no http"),
        ("javascript:alert(1)", "no http"),
        ("just some words", "not a single URL"),
        ("https://a/b https://c/d", "not a single URL"),
        ("https:///nohost", "no host"),
        ("http://[::1/", "malformed"),
        ("https://h:99999/x", "malformed"),
        ("https://" + "a" * 9000, "characters"),
    ],
)
def test_clipboard_non_urls_refused_with_a_reason(text, why):
    with pytest.raises(InputError, match=why):
        clipboard_url(text)


@pytest.mark.parametrize(
    ("report", "text"),
    [
        (None, ""),
        ({"limit_window": None, "window_rate": None, "held": False, "next_change": None}, ""),
        ({"limit_window": None, "window_rate": None, "held": True,
          "queue_change": "2026-12-02T01:00"}, "queue held until 01:00"),
        ({"limit_window": "09:00-18:00=1048576", "window_rate": MIB, "rate": MIB,
          "held": False, "rate_change": "2026-12-02T18:00"}, "scheduled 1.0 MiB/s until 18:00"),
        ({"limit_window": "09:00-18:00=4194304", "window_rate": 4 * MIB, "rate": 2 * MIB,
          "held": False, "rate_change": "2026-12-02T18:00"}, "scheduled 2.0 MiB/s until 18:00"),
        ({"limit_window": "00:00-08:00=none", "window_rate": None, "held": True,
          "next_change": "2026-12-02T00:00", "queue_change": "2026-12-02T01:00"},
         "queue held until 01:00"),
    ],
)
def test_the_schedule_in_words(report, text):
    assert schedule_words(report) == text


def test_title_says_what_the_schedule_does():
    snap = TraySnapshot(queued=2, schedule="queue held until 01:00")
    assert title(snap) == "Freight — 2 queued; queue held until 01:00"
    assert title(TraySnapshot(schedule="scheduled 1.0 MiB/s until 18:00")) == (
        "Freight — idle; scheduled 1.0 MiB/s until 18:00")
