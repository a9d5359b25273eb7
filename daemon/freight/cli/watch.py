"""`freight watch`: a live board of the downloads that fits the terminal (:mod:`freight.cli.board`
orders and fits it; this module keeps it live).

On a terminal it draws on the alternate screen, as top(1) and watch(1) do: every frame is
drawn from the top-left corner and has at most as many lines as the terminal has rows, so
nothing ever scrolls; a resize is picked up at the next frame. Not on a terminal (a pipe, a
file), it prints the board once, every row (or ``--limit``'s), and ends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any, TextIO

from freight.cli.board import frame
from freight.cli.common import client_command
from freight.cli.filters import Filter, add_filter_flags, list_all
from freight.cli.terminal import say_error
from freight.models import EXIT_FAILED, EXIT_OK

#: DEC private modes (xterm ctlseqs): 1049 the alternate screen, 25 the cursor.
_ENTER = "\x1b[?1049h\x1b[?25l"
_LEAVE = "\x1b[?25h\x1b[?1049l"
#: Every frame starts at the top-left corner; each line clears what an older frame left
#: to its right (EL), and the end clears what it left below (ED).
_HOME, _EOL, _EOS = "\x1b[H", "\x1b[K", "\x1b[J"


def configure(sub: Any) -> None:
    p = sub.add_parser("watch", help="a live board of the downloads: active first, fits the "
                       "terminal")
    add_filter_flags(p)
    p.set_defaults(func=cmd_watch)


def draw(out: TextIO, lines: list[str]) -> None:
    out.write(_HOME + "".join(f"{line}{_EOL}\r\n" for line in lines[:-1]))
    out.write((lines[-1] + _EOL if lines else "") + _EOS)
    out.flush()


def apply_event(rows: dict[int, dict[str, Any]], event: str, params: dict[str, Any]) -> None:
    if event == "download.progress":
        for p in params.get("downloads", []):
            if p["id"] in rows:
                rows[p["id"]].update(p)
    elif event in ("download.added", "download.state", "download.changed"):
        d = params.get("download")
        if d:
            rows[d["id"]] = d
    elif event == "download.removed":
        rows.pop(int(params.get("id", -1)), None)


def _watch(client: Any, args: argparse.Namespace) -> int:
    wanted = Filter.from_args(args)
    client.call("subscribe")
    rows = {d["id"]: d for d in list_all(client, wanted.state_list())}

    out = sys.stdout

    def board(height: int | None = None) -> list[str]:
        shown = [d for d in rows.values() if wanted.matches(d)]
        try:  # the terminal's own size, read again for every frame: it follows a resize
            columns, lines = os.get_terminal_size(out.fileno())
        except (OSError, ValueError):
            columns, lines = shutil.get_terminal_size()
        return frame(shown, height or lines, columns, wanted.limit)

    if not out.isatty():  # a pipe or a file: every row (or --limit's), once
        print("\n".join(board(height=len(rows) + 2)))
        return EXIT_OK
    out.write(_ENTER)
    try:
        while True:
            draw(out, board())
            for event, params in client.notifications(timeout=0.5):
                apply_event(rows, event, params)
                break  # redraw at once; the next wait picks up the rest
            if getattr(client.ws, "close_code", None) is not None:
                break
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        out.write(_LEAVE)
        out.flush()
    say_error("the daemon closed the connection")
    return EXIT_FAILED


cmd_watch = client_command(_watch)
