"""What the daemon's subcommands (:mod:`freight.cli.control`, :mod:`freight.cli.commands`)
share: Freight's folders with logging to the file, messages on stderr (made safe for a
terminal, :mod:`freight.cli.terminal`), and the wrapper that connects a command to the daemon
and turns Freight's errors into messages and exit codes.
"""

from __future__ import annotations

import argparse
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
