"""`freight`: one entry point; each group of subcommands is defined next to what it drives."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .models import EXIT_INTERRUPTED, EXIT_USAGE

# Modules that add subcommands with a `configure(subparsers)` function.
_COMMAND_MODULES = ("freight.getcmd", "freight.commands", "freight_host.commands")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit with 2 and say why
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="freight", description="Freight download manager")
    parser.add_argument("--version", action="version", version=f"freight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
