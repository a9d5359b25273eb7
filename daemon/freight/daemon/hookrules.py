"""The checks of the hook settings, ``on_complete`` and ``webhook`` (daemon/hooks.py runs them),
made before a value is saved: by the protocol (params.settings_object) for every API call, and
by the handler for the tray's in-process calls. Sans-I/O but for the PATH lookup.
"""

from __future__ import annotations

import shutil
from typing import Any
from urllib.parse import urlsplit

from freight.errors import InputError


def check_settings(changes: dict[str, Any]) -> None:
    """Refuse a shell string or a missing program for ``on_complete`` and anything but an
    http(s) URL for ``webhook``, before they are saved (InputError naming the setting)."""
    if "on_complete" in changes:
        _check_command(changes["on_complete"])
    if "webhook" in changes:
        _check_webhook(changes["webhook"])


def _check_command(argv: Any) -> None:
    def refuse(why: str) -> InputError:
        return InputError(f"setting 'on_complete' {why}", setting="on_complete")

    if isinstance(argv, str):
        raise refuse("must be a list of arguments, such as [\"notify-send\", \"done\"], not "
                     "a string: it never runs through a shell")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise refuse("must be a list of strings (the program, then its arguments)")
    if not argv:
        return  # off
    if not argv[0]:
        raise refuse("starts with an empty program name")
    if "\x00" in "".join(argv):
        raise refuse("must not hold a NUL character")
    if shutil.which(argv[0]) is None:
        raise refuse(f"names a program that was not found or is not executable: {argv[0]!r} "
                     "(give its absolute path, or a name found on the daemon's PATH)")


def _check_webhook(url: Any) -> None:
    if not isinstance(url, str) or url == "":
        return  # "" is off; the settings table refuses any other type
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid or any(ch.isspace() for ch in url):
        raise InputError("setting 'webhook' must be an http or https URL with a host (or "
                         "\"\": none)", setting="webhook")
