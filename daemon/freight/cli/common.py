"""What the daemon's subcommands (:mod:`freight.cli.control`, :mod:`freight.cli.commands`)
share: Freight's folders with logging to the file, messages on stderr (made safe for a
terminal, :mod:`freight.cli.terminal`), and the wrapper that connects a command to the daemon
and turns Freight's errors into messages and exit codes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from collections.abc import Callable
from typing import Any

from freight import config
from freight.cli.terminal import say_error
from freight.errors import FreightError, InputError
from freight.models import EXIT_FAILED, EXIT_USAGE


def setup_paths() -> config.Paths:
    from freight import logs

    paths = config.paths_from_env().ensure()
    # Client commands log to the file only: their stderr is for the user's messages.
    logs.setup(paths.log_file)
    return paths


def client_command(body: Callable[[Any, argparse.Namespace], int]) -> Callable[..., int]:
    """Connect, run body(client, args), map Freight's errors to messages and exit codes."""

    def run(args: argparse.Namespace) -> int:
        from freight.client import Client

        try:
            with Client.connect(setup_paths()) as client:
                return body(client, args)
        except InputError as exc:
            say_error(str(exc))
            return EXIT_USAGE
        except FreightError as exc:
            say_error(str(exc))
            return EXIT_FAILED

    return run


# -- the flags' words --------------------------------------------------------------------------
#
# The daemon's errors name its params ("param 'connections' must be >= 1", docs/PROTOCOL.md);
# the user typed flags. The CLI knows which flag filled which param and says that one.

#: The flag (or argument) of `add` and `get` that fills each param of the API.
PARAM_FLAGS = {
    "url": "URL", "urls": "URL", "dir": "-d/--dir", "name": "-o/--output",
    "connections": "-x/--connections", "limit": "--limit", "headers": "-H/--header",
    "checksum": "--checksum",
}
MAX_CONNECTIONS = 64


def flag_error(exc: InputError, flags: dict[str, str] = PARAM_FLAGS) -> InputError:
    """``exc`` reworded to name the flag that filled the param it names (if it names one)."""
    param = exc.data.get("param")
    flag = flags.get(param) if isinstance(param, str) else None
    if flag is None:
        return exc
    message = re.sub(rf"^param '{re.escape(param)}'", flag, exc.message)
    if message == exc.message:
        message = f"{flag}: {exc.message}"
    if param in ("url", "urls"):
        message += " (like https://example.com/file.iso)"
    return InputError(message, **exc.data)


def connections_flag(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_CONNECTIONS:
        raise InputError(f"-x/--connections takes 1 to {MAX_CONNECTIONS} connections, not "
                         f"{value} (leave it out for the adaptive count)", param="connections")
    return value


def rate_flag(flag: str, text: str) -> int:
    """--limit's RATE in bytes/s; the error names the flag and shows what works."""
    try:
        return config.parse_rate(text)
    except InputError:
        raise InputError(f"{flag} takes a positive rate such as 500K, 2M or 1G (bytes per "
                         f"second), not {text!r}", param="limit") from None


def folder_flag(text: str) -> tuple[str, bool]:
    """-d/--dir as an absolute folder, and whether it was made now.

    A folder that is missing is made only when its parent exists: `-d ~/Downloads/isos`
    makes "isos", a typo higher up (`-d /mnt/usb/isos` with no /mnt/usb) is refused, never
    turned into a tree of folders nobody asked for.
    """
    folder = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(folder):
        return folder, False
    if os.path.lexists(folder):
        raise InputError(f"-d/--dir: {folder} is not a folder", param="dir")
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):
        raise InputError(f"-d/--dir: {parent} does not exist; create it first "
                         f"(mkdir -p {shlex.quote(folder)}) or give another folder",
                         param="dir")
    try:
        os.mkdir(folder)  # as the umask says, like the files in it (docs/SECURITY.md)
    except FileExistsError:
        return folder, False
    except OSError as exc:
        raise InputError(f"-d/--dir: cannot create {folder}: {exc.strerror}",
                         param="dir") from None
    return folder, True


#: The settings that are sizes in bytes: typed as 10M or 512K too, and said in units.
SIZE_SETTINGS = {"capture_min_size", "small_size", "min_split_size", "read_size", "max_size"}


def size_from_text(name: str, text: str) -> int | None:
    """`freight settings NAME VALUE` for a size: 10M, 512K, 1048576; null or none: no value
    (for the settings that take one)."""
    if text.strip().lower() in ("null", "none"):
        return None
    try:
        return 0 if text.strip() == "0" else config.parse_size(text)
    except InputError:
        raise InputError(f"setting {name!r} takes a size such as 10M, 512K or 1048576 "
                         f"(bytes), not {text[:40]!r}", setting=name) from None
