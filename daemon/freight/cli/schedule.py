"""`freight schedule`: speed limits by time of day, the queue's hours (freight/timetable.py).

    freight schedule                       show the table and what applies now
    freight schedule limit 09:00-18:00 1M  at most 1 MiB/s from 09:00 to 18:00
    freight schedule limit 00:00-08:00 none   full speed then (a window of its own)
    freight schedule queue 01:00-07:00     the queue runs only then
    freight schedule clear [limits|queue]  remove them (both when neither is named)

They are the settings ``schedule_limits`` and ``schedule_queue``; the windows are checked
here first, so that a mistake is named in the words typed, then by the daemon when stored.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from freight import timetable
from freight.cli.common import client_command
from freight.cli.terminal import say
from freight.models import EXIT_OK
from freight.units import format_rate


def configure(sub: Any) -> None:
    p = sub.add_parser("schedule", help="speed limits by time of day, hours the queue runs")
    p.set_defaults(func=cmd_schedule, action="show")
    actions = p.add_subparsers(dest="action")
    show = actions.add_parser("show", help="the schedule and what applies now")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    limit = actions.add_parser("limit", help="a speed limit for a time of day")
    limit.add_argument("window", metavar="START-END", help="local time, e.g. 09:00-18:00")
    limit.add_argument("rate", metavar="RATE", help="500K, 1M, ... or none (full speed)")
    queue = actions.add_parser("queue", help="the hours the queue runs (held outside them)")
    queue.add_argument("windows", nargs="+", metavar="START-END", help="e.g. 01:00-07:00")
    clear = actions.add_parser("clear", help="remove the speed windows, the queue's, or both")
    clear.add_argument("what", nargs="?", choices=("limits", "queue"), help="default: both")
    p.set_defaults(json=False)


def _schedule(client: Any, args: argparse.Namespace) -> int:
    settings = client.call("get_settings")["settings"]
    limits: list[str] = settings["schedule_limits"]
    changes: dict[str, list[str]] = {}
    if args.action == "limit":
        new = timetable.parse_rate_window(f"{args.window}={args.rate}")
        # The same span again replaces its rate; any other overlap is the daemon's error.
        kept = [w for w in limits if timetable.parse_rate_window(w).window != new.window]
        changes["schedule_limits"] = [*kept, new.text()]
    elif args.action == "queue":
        changes["schedule_queue"] = [timetable.parse_window(w).text() for w in args.windows]
    elif args.action == "clear":
        for name in ("limits", "queue"):
            if args.what in (None, name):
                changes[f"schedule_{name}"] = []
    if changes:
        settings = client.call("set_settings", settings=changes)["settings"]
    status = client.call("status")
    if args.json:
        print(json.dumps({"limits": settings["schedule_limits"],
                          "queue": settings["schedule_queue"], "now": status.get("schedule")}))
        return EXIT_OK
    _show(settings, status)
    return EXIT_OK


def _show(settings: dict[str, Any], status: dict[str, Any]) -> None:
    limits = [timetable.parse_rate_window(w) for w in settings["schedule_limits"]]
    say("speed by time of day:" + ("" if limits else " none set"))
    for w in limits:
        say(f"  {w.window.text()}  {'full speed' if w.rate is None else format_rate(w.rate)}")
    queue = settings["schedule_queue"]
    say("queue runs: " + (", ".join(queue) if queue else "always"))
    now = status.get("schedule") or {}
    user = settings["global_limit"]
    rate = status.get("global_limit")
    line = f"now: {'full speed' if rate is None else format_rate(rate)}"
    if now.get("limit_window"):
        line += f" (your limit: {'none' if user is None else format_rate(user)})"
    say(f"{line}; {schedule_line(now)}")


def schedule_line(now: dict[str, Any]) -> str:
    """``status``'s ``schedule`` in words (also a line of `freight status`)."""
    line = "the queue is " + ("held" if now.get("held") else "running")
    if now.get("limit_window"):
        line += f", speed window {now['limit_window'].split('=')[0]}"
    if now.get("next_change"):
        line += f"; next change {now['next_change'].replace('T', ' ')}"
    return line


cmd_schedule = client_command(_schedule)
