"""`freight add`: check every URL and flag before anything is queued, queue them (in chunks
of ``add_many``), say what was added and what was there already (docs/PROTOCOL.md
"Duplicates"). The parser's flags are in :mod:`freight.cli.commands`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from freight.cli.already import already
from freight.cli.common import (
    client_command,
    connections_flag,
    flag_error,
    folder_flag,
    rate_flag,
    say_error,
)
from freight.cli.terminal import terminal_text
from freight.errors import FreightError, InputError
from freight.headers import parse_header_lines
from freight.models import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from freight.urls import split_credentials


def _add(client: Any, args: argparse.Namespace) -> int:
    try:
        return _add_checked(client, args)
    except InputError as exc:
        raise flag_error(exc) from None


def _add_checked(client: Any, args: argparse.Namespace) -> int:
    if args.output and len(args.urls) > 1:
        raise InputError("-o/--output names one file: give one URL with it")
    params: dict[str, Any] = {}
    if args.output:
        params["name"] = args.output
    if args.connections is not None:
        params["connections"] = connections_flag(args.connections)
    if args.limit:
        params["limit"] = rate_flag("--limit", args.limit)
    if args.header:
        params["headers"] = parse_header_lines(args.header)
    if args.checksum:
        params["checksum"] = args.checksum
    if args.paused:
        params["paused"] = True
    if args.again:
        params["again"] = True
    from freight.daemon import protocol as api

    shown = [split_credentials(url)[0] for url in args.urls]  # never print a URL's password
    if len(args.urls) == 1:
        api.check_params("add", {"url": args.urls[0], **params})
    else:
        # Every URL is checked before anything is queued; a bad one is named by its place
        # (never quoted: it may hold a password).
        api.check_params("add_many", {"urls": args.urls[:1], **params})
        for n, url in enumerate(args.urls, 1):
            try:
                api.check_params("add", {"url": url})
            except InputError as exc:
                message = flag_error(exc).message.removeprefix("URL ")
                raise InputError(f"URL {n} of {len(args.urls)} {message}",
                                 position=n) from None
    if args.dir:  # made (and said) only once everything else is known to be right
        params["dir"], created = folder_flag(args.dir)
        if created:
            say_error(f"created folder {params['dir']}")
    if len(args.urls) == 1:
        one = client.call("add", url=args.urls[0], **params)
        outcomes: list[Any] = [one.get("duplicate") or one["id"]]
    else:
        outcomes = []
        for chunk in _chunks(args.urls):
            try:
                got = client.call("add_many", urls=chunk, **params)
            except FreightError as exc:  # the daemon began to stop, say: this chunk is not queued
                outcomes += [exc] * len(chunk)
                continue
            repeats = {d["index"]: d for d in got.get("duplicates", [])}
            outcomes += [repeats.get(n, i) for n, i in enumerate(got["ids"])]
    # A duplicate is a dict naming the download already there (docs/PROTOCOL.md).
    added = [(o, url) for o, url in zip(outcomes, shown, strict=True) if isinstance(o, int)]
    repeated = [(o, url) for o, url in zip(outcomes, shown, strict=True) if isinstance(o, dict)]
    if args.json:
        record: dict[str, Any] = {"ids": [o if isinstance(o, int) else o["id"] for o in outcomes
                                          if not isinstance(o, BaseException)]}
        if repeated:
            record["duplicates"] = [{k: v for k, v in o.items() if k != "index"}
                                    for o, _ in repeated]
        print(json.dumps(record))
    else:
        if added:
            print("\n".join(f"{download_id}\t{terminal_text(url)}"  # the tab separates
                            for download_id, url in added))
        for old, url in repeated:  # on stderr, as `freight get` says it: stdout stays id, URL
            print(terminal_text(already(old["state"], old["id"], old["name"], old["path"], url)),
                  file=sys.stderr)
    errors = [(o, url) for o, url in zip(outcomes, shown, strict=True)
              if isinstance(o, BaseException)]
    if errors:
        say_error(f"{len(errors)} of {len(outcomes)} URLs not queued "
                  f"(the first: {errors[0][1]}): {errors[0][0]}")
        return EXIT_USAGE if isinstance(errors[0][0], InputError) else EXIT_FAILED
    return EXIT_OK


#: URLs per ``add_many`` request, and their characters: each request stays far below the
#: API's 1 MiB message, and the daemon's loop serves others between two of them.
CHUNK_URLS = 1000
CHUNK_CHARS = 256 * 1024


def _chunks(urls: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    chars = 0
    for url in urls:
        if chunks[-1] and (len(chunks[-1]) >= CHUNK_URLS or chars + len(url) > CHUNK_CHARS):
            chunks.append([])
            chars = 0
        chunks[-1].append(url)
        chars += len(url)
    return chunks


cmd_add = client_command(_add)
