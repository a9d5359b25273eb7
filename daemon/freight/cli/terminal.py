"""Text from outside — a server's reason phrase or error, a file name, a URL, an error
message — made safe for a terminal, and the CLI's messages that use it.

A terminal obeys what it is sent: ESC starts a control sequence (``ESC ] 0 ; title BEL`` sets
the window title, ``ESC [ 2 J`` clears the screen, OSC 8 makes links, some terminals answer
queries into their input), C1 characters (U+0080–U+009F) are the same controls in one
character, a CR or a backspace overwrites what was printed, and the bidi overrides and
isolates (U+202A–U+202E, U+2066–U+2069; Unicode TR #9) reorder it ("Trojan Source"). Every
such character is shown as a visible escape instead (``\\x1b``, ``\\u202e``), tab and
newline too: every field Freight prints is one line. Rich markup in the text (``[bold]``,
``[link=...]``) is never interpreted: Rich gets :class:`rich.text.Text` objects or
``markup=False``, never markup built from data. Secrets are redacted first
(:func:`freight.redact.redact_text`). JSON output does not come here: JSON escapes control
characters itself and must stay exact.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from freight.redact import redact_text

#: C0 controls, DEL, C1 controls; the bidi marks, embeddings, overrides and isolates; lone
#: surrogates (which a UTF-8 terminal cannot even be sent).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_text(value: object) -> str:
    """``value`` as text a terminal shows as it is: secrets redacted, controls escaped."""
    return _UNSAFE.sub(_escape, redact_text(str(value)))


def cell(value: object) -> Any:
    """A Rich table cell of ``value``: safe text, never read as markup."""
    from rich.text import Text

    return Text(terminal_text(value))


def say_error(message: object) -> None:
    print(f"freight: {terminal_text(message)}", file=sys.stderr)


def say(message: object) -> None:
    """One line on stdout, made safe."""
    print(terminal_text(message))


class Messages:
    """Messages on stderr: through rich on a terminal, plain text otherwise (rich costs
    memory and time that a scripted `--json` run does not need). Text is never markup:
    a file name with [brackets] prints as it is; and it is always made safe."""

    def __init__(self, console: Any | None) -> None:
        self.console = console

    def say(self, text: str, style: str | None = None) -> None:
        if self.console is None:
            print(terminal_text(text), file=sys.stderr, flush=True)
        else:
            self.console.print(
                terminal_text(text), style=style, markup=False, highlight=False
            )


def console_for(args: argparse.Namespace) -> Messages:
    if args.json or args.quiet or not sys.stderr.isatty():
        return Messages(None)
    from rich.console import Console

    return Messages(Console(stderr=True))
