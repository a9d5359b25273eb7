"""The CLI's entry point: the lazy table of commands must name exactly what the modules add."""

from __future__ import annotations

import argparse
import subprocess
import sys

from freight.cli import entry as cli


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_command_is_declared_with_its_module() -> None:
    declared = {c for commands in cli._COMMAND_MODULES.values() for c in commands}
    assert _commands(cli.build_parser()) == declared
    for module, commands in cli._COMMAND_MODULES.items():
        for command in commands:
            assert command in _commands(cli.build_parser(command)), (module, command)


def test_only_the_named_commands_module_is_imported() -> None:
    code = (
        "import sys; from freight.cli import entry as cli; cli.build_parser('get'); "
        "print('freight.cli.install' in sys.modules, 'freight.cli.commands' in sys.modules,"
        " 'freight.cli.control' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_an_unknown_command_is_a_usage_error_that_lists_all() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "freight", "bogus"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "doctor" in out.stderr and "get" in out.stderr and "watch" in out.stderr
