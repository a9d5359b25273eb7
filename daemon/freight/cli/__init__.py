"""The `freight` command line: subcommands over the API, `freight get`, doctor, install."""

from freight.cli.entry import main

__all__ = ["main"]
