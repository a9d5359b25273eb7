"""`freight`: one entry point; each group of subcommands is defined next to what it drives."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from freight import __version__
from freight.models import EXIT_INTERRUPTED, EXIT_USAGE

# Modules that add subcommands with a `configure(subparsers)` function, and the commands each
# defines: only the module of the command asked for is imported (start-up time and memory).
_COMMAND_MODULES = {
    "freight.cli.get": ("get",),
    "freight.cli.control": ("daemon", "start", "stop", "status", "token"),
    "freight.cli.commands": (
        "add", "ls", "pause", "resume", "cancel", "rm", "wait", "limit", "refresh", "move",
        "settings",
    ),
    "freight.cli.watch": ("watch",),
    "freight.cli.install": ("install", "uninstall", "doctor"),
    "freight.cli.schedule": ("schedule",),
    "freight.cli.housekeeping": ("clear", "restart"),
}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # "-5M" is a value (a rate, a size), not an unknown flag, so that `--limit -5M` gets
        # the flag's own error ("takes a positive rate") and not "expected one argument".
        self._negative_number_matcher = re.compile(r"^-\d*\.?\d+[a-zA-Z/]*$")

    def error(self, message: str) -> None:  # usage errors exit with 2 and say why
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's module is loaded (others when the
    command is unknown, so that the usage error lists them all)."""
    parser = _Parser(prog="freight", description="Freight download manager")
    parser.add_argument("--version", action="version", version=f"freight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    wanted = [m for m, commands in _COMMAND_MODULES.items() if command in commands]
    for name in wanted or _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
