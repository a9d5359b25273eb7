"""The queue's subcommands, clients of the daemon's API: `add`, `ls`, `pause`, `resume`,
`cancel`, `rm`, `wait`, `limit`, `refresh`, `move`, `settings` (the daemon itself is driven by
:mod:`freight.cli.control`; `watch` is :mod:`freight.cli.watch`).

Each ``func(args) -> int`` returns the exit code: 0 fine, 1 failed (or no daemon), 2 bad usage
or input, 3 a download needs a fresh link (as `freight get`).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from freight import config
from freight.cli.adding import cmd_add
from freight.cli.common import (
    SIZE_SETTINGS,
    client_command,
    rate_flag,
    say_error,
    size_from_text,
)
from freight.cli.filters import Filter, add_filter_flags
from freight.cli.filters import list_all as _list_all
from freight.cli.terminal import say
from freight.errors import InputError, NotFound, RefreshRefused
from freight.headers import parse_header_lines
from freight.models import EXIT_FAILED, EXIT_NEEDS_REFRESH, EXIT_OK, DownloadState
from freight.units import format_rate, format_size
from freight.urls import split_credentials

S = DownloadState


def configure(sub: Any) -> None:
    p = sub.add_parser("add", help="queue URLs in the daemon")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-d", "--dir", help="folder to save into (its last level is created if "
                   "missing, and said)")
    p.add_argument("-o", "--output", metavar="NAME", help="file name (one URL only)")
    p.add_argument("-x", "--connections", type=int, metavar="N",
                   help="connections, 1-64 (default: adaptive, as freight get)")
    p.add_argument("--limit", metavar="RATE", help="speed limit, e.g. 500K, 2M")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("--checksum", metavar="sha256:HEX", help="verify before the final rename")
    p.add_argument("--paused", action="store_true", help="add without starting")
    p.add_argument("--json", action="store_true", help="print the ids as JSON")
    p.add_argument(
        "--again", action="store_true",
        help="download a new copy even if this URL is already downloaded or queued "
        "(without it: \"already downloaded: PATH\", exit 0)",
    )
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("ls", help="list downloads")
    p.add_argument("--json", action="store_true")
    add_filter_flags(p)
    p.set_defaults(func=cmd_ls)

    for name, help_text in (
        ("pause", "pause downloads"),
        ("resume", "resume downloads"),
        ("cancel", "stop downloads and delete their partial data"),
        ("rm", "remove downloads from the list"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("ids", nargs="*", type=int, metavar="ID")
        p.add_argument("--all", action="store_true", help="every download it applies to")
        if name == "rm":
            p.add_argument("--delete-file", action="store_true", help="delete finished files too")
        p.set_defaults(func=cmd_action, action=name)

    p = sub.add_parser("wait", help="wait until downloads end (exit code as freight get)")
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("limit", help="the global speed limit: RATE (500K, 2M) or none")
    p.add_argument("rate")
    p.set_defaults(func=cmd_limit)

    p = sub.add_parser("refresh", help="give a download a fresh link; it resumes if it can")
    p.add_argument("id", type=int)
    p.add_argument("url")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("--force", action="store_true",
                   help="take a link from another site or for other validators; the download "
                   "starts over from zero")
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("move", help="reorder the queue")
    p.add_argument("id", type=int)
    p.add_argument("to", choices=["top", "bottom", "up", "down"])
    p.set_defaults(func=cmd_move)

    p = sub.add_parser("settings", help="show or change settings")
    p.add_argument("name", nargs="?")
    p.add_argument("value", nargs="?",
                   help="JSON (null, 5, true, [..]), on/off, words for a list, a size "
                   "(10M) for a *_size setting, or plain text")
    p.set_defaults(func=cmd_settings)


# -- clients of the API ----------------------------------------------------------------------


def _ls(client: Any, args: argparse.Namespace) -> int:
    wanted = Filter.from_args(args)
    rows = wanted.select(_list_all(client, wanted.state_list()))
    if args.json:
        print(json.dumps(rows))
        return EXIT_OK
    from rich.console import Console

    from freight.cli.board import ls_table  # rich: only for the commands that draw

    console = Console()
    console.print(ls_table(rows, console.width))
    return EXIT_OK


cmd_ls = client_command(_ls)


_APPLIES = {
    "pause": [S.ACTIVE, S.QUEUED],
    "resume": [S.PAUSED, S.FAILED, S.NEEDS_REFRESH],
    "cancel": [S.ACTIVE, S.QUEUED, S.PAUSED, S.FAILED, S.NEEDS_REFRESH],
    "rm": None,
}


#: What each action says it did: "paused 3: movie.mkv".
_DONE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "rm": "removed"}


def _action(client: Any, args: argparse.Namespace) -> int:
    if args.all == bool(args.ids):
        raise InputError(f"{args.action}: give download ids or --all (not both)")
    method = {"rm": "remove"}.get(args.action, args.action)
    if args.all:
        states = _APPLIES[args.action]
        rows = _list_all(client, [s.value for s in states] if states else None)
        if not rows:
            print(f"nothing to {args.action}")
            return EXIT_OK
    else:
        # Read before the action: a removed download is no longer there to be named. An id
        # that names none is left for the daemon to refuse, as it refuses the whole request.
        rows = [row for row in map(lambda i: _row_or_none(client, i), args.ids) if row]
    names = {row["id"]: row.get("name") or split_credentials(row["url"])[0] for row in rows}
    params: dict[str, Any] = {"ids": args.ids or [row["id"] for row in rows]}
    if args.action == "rm" and args.delete_file:
        params["delete_file"] = True
    try:
        changed = client.call(method, **params)["ids"]
    except NotFound as exc:
        raise NotFound(f"{exc} (`freight ls` lists the downloads)", **exc.data) from None
    for download_id in changed:
        name = names.get(download_id)
        say(f"{_DONE[args.action]} {download_id}: {name}" if name
            else f"{_DONE[args.action]} {download_id}")
    if not changed:
        print("nothing changed")
    return EXIT_OK


def _row_or_none(client: Any, download_id: int) -> dict[str, Any] | None:
    try:
        row: dict[str, Any] = client.call("get", id=download_id)
        return row
    except NotFound:
        return None


cmd_action = client_command(_action)


_ENDS = {S.COMPLETED.value, S.FAILED.value, S.NEEDS_REFRESH.value, S.REMOVED.value}


def _end_code(states: list[str]) -> int:
    if any(s in (S.FAILED.value, S.REMOVED.value) for s in states):
        return EXIT_FAILED
    if S.NEEDS_REFRESH.value in states:
        return EXIT_NEEDS_REFRESH
    return EXIT_OK


#: The states that end a wait, or may (a paused download ends it when a full disk paused it):
#: the daemon sends `freight wait` no other (queued → active is half of all moves).
_WAIT_STATES = sorted({*_ENDS, S.PAUSED.value})


def _subscribe_for_wait(client: Any) -> None:
    # Each try leaves out the param an older daemon (still running after an upgrade) refused.
    for params in ({"rows": False, "states": _WAIT_STATES}, {"rows": False}, {}):
        try:
            client.call("subscribe", events=["download.state", "download.removed"], **params)
            return
        except InputError:
            if not params:
                raise


def _wait(client: Any, args: argparse.Namespace) -> int:
    """Block until every download is completed, failed, needs a refresh or was removed.

    A paused download is waited for (it may be resumed), unless a full disk paused it.
    """
    _subscribe_for_wait(client)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    ids = set(args.ids)
    ends: dict[int, str] = {}

    def judge(download_id: int, state: str | None, error_kind: str | None) -> None:
        if state in _ENDS or (state == S.PAUSED.value and error_kind):
            ends[download_id] = state if state != S.PAUSED.value else S.FAILED.value

    def look(wanted: list[int]) -> None:
        # A state event that came meanwhile is kept by the client and read below; judging
        # twice is harmless.
        for download_id, state in client.states(wanted).items():
            judge(download_id, *state)

    look(sorted(ids))
    while len(ends) < len(ids):
        if deadline is not None and time.monotonic() > deadline:
            say_error("timed out")
            return EXIT_FAILED
        for event, params in client.notifications(timeout=1.0):
            wanted = params.get("id")
            if wanted in ids and wanted not in ends:
                if event == "download.removed":
                    ends[wanted] = S.REMOVED.value
                else:  # the event carries the state and its error: no need to ask again
                    judge(wanted, params.get("state"), params.get("error_kind"))
            if len(ends) == len(ids):
                break
        else:
            look(sorted(ids - set(ends)))  # a missed event cannot hang us
    for download_id in args.ids:
        print(f"{download_id}\t{ends[download_id]}")
    return _end_code(list(ends.values()))


cmd_wait = client_command(_wait)


def _limit(client: Any, args: argparse.Namespace) -> int:
    off = args.rate.lower() in ("none", "0", "off")
    rate = None if off else rate_flag("RATE (none: no limit)", args.rate)
    result = client.call("set_limits", global_limit=rate)
    limit = result["global_limit"]
    print(f"global limit: {format_rate(limit) if limit else 'none'}")
    return EXIT_OK


cmd_limit = client_command(_limit)


def _refresh(client: Any, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"id": args.id, "url": args.url}
    if args.header:
        params["headers"] = parse_header_lines(args.header)
    if args.force:
        params["force"] = True
    try:
        client.call("refresh", **params)
    except RefreshRefused as exc:
        raise RefreshRefused(
            f"{exc} (`freight refresh {args.id} URL --force` takes it anyway, from zero)"
        ) from None
    print(f"{args.id}\trefreshed")
    return EXIT_OK


cmd_refresh = client_command(_refresh)


def _move(client: Any, args: argparse.Namespace) -> int:
    print(client.call("move", id=args.id, to=args.to)["position"])
    return EXIT_OK


cmd_move = client_command(_move)


def _settings(client: Any, args: argparse.Namespace) -> int:
    if args.name is None:
        settings = client.call("get_settings")["settings"]
        for name, value in settings.items():
            print(f"{name} = {json.dumps(value)}")
        return EXIT_OK
    if args.name not in config.SETTINGS:
        raise InputError(f"unknown setting {args.name!r}")
    if args.value is None:
        print(json.dumps(client.call("get_settings")["settings"][args.name]))
        return EXIT_OK
    if args.name in SIZE_SETTINGS:
        value: Any = size_from_text(args.name, args.value)
    else:
        value = config.setting_from_text(args.name, args.value)  # on/off, 5, [..], a folder
    settings = client.call("set_settings", settings={args.name: value})["settings"]
    shown = settings[args.name]
    units = f" ({format_size(shown)})" if args.name in SIZE_SETTINGS and shown else ""
    print(f"{args.name} = {json.dumps(shown)}{units}")
    return EXIT_OK


cmd_settings = client_command(_settings)
