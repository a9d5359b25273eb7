"""What `freight watch` draws: the downloads in the order a user looks for them, fitted to the
terminal (pure: no I/O, so that the fitting is tested for any list and any size).

Order: active first, then queued (in queue order), then the ones that wait for the user
(paused, needs_refresh, failed), then completed, most recently finished first. The frame
never has more lines than the terminal has rows, nor a line wider than it: a table taller
than the screen would scroll, and the rows that matter would scroll out of sight. What does
not fit is counted in one last line, "… and N more (queued 40, completed 12)".

`freight ls` prints its table from here too (:func:`ls_table`): both cut a long name in its
middle, never its end, so that the extension stays in sight (:func:`crop_middle`).

Text from outside (names, URLs, errors) goes through :func:`freight.cli.terminal.terminal_text`
before it is measured; widths are in terminal cells (wide characters count two).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len, set_cell_size

from freight.cli.terminal import terminal_text
from freight.models import DownloadState
from freight.units import format_rate, format_size

S = DownloadState

#: Display groups, in the order they are shown.
GROUPS: tuple[tuple[str, ...], ...] = (
    (S.ACTIVE.value,),
    (S.QUEUED.value,),
    (S.PAUSED.value, S.NEEDS_REFRESH.value, S.FAILED.value),
    (S.COMPLETED.value,),
)
_GROUP_OF = {state: i for i, states in enumerate(GROUPS) for state in states}
_STATE_ORDER = [state for states in GROUPS for state in states]

HEADER = ("ID", "STATE", "DONE", "SIZE", "SPEED", "ETA", "NAME")
_WIDTHS = (None, 13, 6, 9, 11, 6)  # the ID column takes the widest id; NAME takes the rest


def sort_key(d: dict[str, Any]) -> tuple[Any, ...]:
    group = _GROUP_OF.get(d.get("state", ""), len(GROUPS))
    if group == _GROUP_OF[S.COMPLETED.value]:
        return (group, -(d.get("finished_at") or 0), -int(d["id"]))  # most recent first
    return (group, d.get("position") or 0, int(d["id"]))


def ordered(downloads: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(downloads, key=sort_key)


def crop(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, with an ellipsis where it was cut."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1).rstrip() + "…"


def crop_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells in its middle: the end of a file name (its extension,
    the part number, "(2)") is what tells two downloads apart, so it stays."""
    if cell_len(text) <= width or width < 8:
        return crop(text, width)
    stem, dot, ext = text.rpartition(".")
    keep_end = min(max(width // 3, cell_len(ext) + 1 if dot and stem else 0), width - 4)
    end = ""
    for char in reversed(text):
        if cell_len(char + end) > keep_end:
            break
        end = char + end
    start = set_cell_size(text, width - 1 - cell_len(end)).rstrip()
    return start + "…" + end


def name_and_error(d: dict[str, Any], width: int) -> str:
    """The name (or URL) in ``width`` cells, cut in the middle, its error after it."""
    name = terminal_text(d.get("name") or d.get("url") or "")
    error = f"  ({terminal_text(d['error'])})" if d.get("error") else ""
    return crop(crop_middle(name, max(width - cell_len(error), 16)) + error, width)


def cells(d: dict[str, Any]) -> tuple[str, ...]:
    size, done = d.get("size"), d.get("done") or 0
    pct = f"{100 * done / size:.0f}%" if size else format_size(done)
    if d.get("state") == S.COMPLETED.value:
        pct = "100%"
    eta = f"{d['eta']:.0f}s" if d.get("eta") is not None else ""
    speed = format_rate(d["speed"]) if d.get("speed") else ""
    name = d.get("name") or d.get("url") or ""
    if d.get("error"):
        name = f"{name}  ({d['error']})"
    return (str(d["id"]), terminal_text(d.get("state", "")), pct, format_size(size) if size else "",
            speed, eta, terminal_text(name))


def _line(values: tuple[str, ...], id_width: int, width: int) -> str:
    widths = (id_width, *_WIDTHS[1:])
    parts = [values[0].rjust(id_width), values[1].ljust(widths[1])]
    parts += [v.rjust(w or 0) for v, w in zip(values[2:6], widths[2:6])]
    prefix = " ".join([*parts, ""])
    return crop((prefix + crop_middle(values[6], width - cell_len(prefix))).rstrip(), width)


def more_line(hidden: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for d in hidden:
        counts[d.get("state", "?")] = counts.get(d.get("state", "?"), 0) + 1
    known = [s for s in _STATE_ORDER if s in counts] + sorted(set(counts) - set(_STATE_ORDER))
    detail = ", ".join(f"{terminal_text(s).replace('_', ' ')} {counts[s]}" for s in known)
    return f"… and {len(hidden)} more ({detail})"


def frame(
    downloads: Iterable[dict[str, Any]], height: int, width: int, limit: int | None = None
) -> list[str]:
    """The lines to draw: at most ``height`` lines, none wider than ``width`` cells.

    A header, then the rows in :func:`ordered` order; when they do not all fit (or ``limit``
    keeps fewer), the last line counts the rest by state."""
    if height <= 0 or width <= 0:
        return []
    rows = ordered(downloads)
    id_width = max([len(HEADER[0]), *(len(str(d["id"])) for d in rows)])
    header = _line(HEADER, id_width, width)
    if not rows:
        return [header, crop("no downloads", width)][:height]
    room = height - 1  # below the header
    wanted = len(rows) if limit is None else min(limit, len(rows))
    if wanted == len(rows) and len(rows) <= room:
        return [header, *(_line(cells(d), id_width, width) for d in rows)]
    if room < 1:  # one line: only the count
        return [crop(more_line(rows), width)]
    shown = rows[: min(wanted, room - 1)]
    body = [_line(cells(d), id_width, width) for d in shown]
    return [header, *body, crop(more_line(rows[len(shown):]), width)]


def ls_table(rows: list[dict[str, Any]], width: int = 80) -> Any:
    """`freight ls`'s table of ``rows`` for a terminal ``width`` cells wide."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    columns = (("ID", "right"), ("STATE", "left"), ("DONE", "right"), ("SIZE", "right"),
               ("SPEED", "right"), ("ETA", "right"), ("NAME", "left"))
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    lines = []
    for d in rows:
        pct = f"{100 * d['done'] / d['size']:.0f}%" if d.get("size") else format_size(d["done"])
        eta = f"{d['eta']:.0f}s" if d.get("eta") is not None else ""
        speed = format_rate(d["speed"]) if d.get("speed") else ""
        lines.append([terminal_text(v) for v in (d["id"], d["state"], pct,
                                                 format_size(d.get("size")), speed, eta)])
    # The name gets what the other columns leave; it is cut in its middle, not at its end,
    # so the extension stays in sight (board.crop_middle). Rich puts 2 cells between columns.
    others = [max([cell_len(col)] + [cell_len(line[i]) for line in lines])
              for i, (col, _) in enumerate(columns[:-1])]
    room = max(width - sum(others) - 2 * len(others), 16)
    for d, line in zip(rows, lines, strict=True):
        # Cells as Text: a name or an error from a server is never markup, never a control.
        table.add_row(*map(Text, (*line, name_and_error(d, room))))
    return table
