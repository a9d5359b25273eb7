"""`freight clear` and `freight restart`: what comes after a download ends.

``clear`` forgets the completed downloads (the files stay where they are); ``restart`` puts a
failed or cancelled download back in the queue from zero, or, with ``--again``, downloads a
completed one again as a new copy beside the first. Each says what it did.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from freight.cli.common import client_command
from freight.cli.terminal import terminal_text
from freight.models import EXIT_OK


def configure(sub: Any) -> None:
    p = sub.add_parser("clear", help="forget completed downloads (their files stay)")
    p.add_argument("--json", action="store_true", help="print the ids cleared as JSON")
    p.set_defaults(func=cmd_clear)

    p = sub.add_parser(
        "restart", help="download a failed or cancelled download again, from zero")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--again", action="store_true",
                   help="a completed download: fetch it again as a new copy beside the file")
    p.set_defaults(func=cmd_restart)


def _clear(client: Any, args: argparse.Namespace) -> int:
    ids = client.call("clear")["ids"]
    if args.json:
        print(json.dumps({"ids": ids}))
    elif ids:
        print(f"cleared {len(ids)} completed download{'' if len(ids) == 1 else 's'}")
    else:
        print("nothing to clear: no completed downloads")
    return EXIT_OK


def _restart(client: Any, args: argparse.Namespace) -> int:
    before = client.call("get", id=args.id)
    answer = client.call("restart", id=args.id, again=args.again)
    name = before["name"] or os.path.basename(before["url"].split("?")[0]) or before["url"]
    if answer["id"] == args.id:
        print(f"restarted {args.id}: {terminal_text(name)} (from zero)")
    else:
        print(f"downloading {args.id} again as {answer['id']}: {terminal_text(name)} "
              "(a new copy beside the first)")
    return EXIT_OK


cmd_clear = client_command(_clear)
cmd_restart = client_command(_restart)
