"""Registering the native host with the browsers, and the daemon's autostart at login, as a
plan: no I/O.

:func:`plan_install` turns a :class:`~freight.cli.browsers.Context` (platform, home, folders,
Python) and the user's choices into a :class:`Plan`, a list of actions (:class:`WriteFile`,
:class:`SetRegistryValue`). Manifest contents, launcher scripts and autostart entries of every
browser on Linux, macOS and Windows are computed here, so they are tested on any OS. The
browsers and their folders are :mod:`freight.cli.browsers`; :mod:`freight.cli.effects`
performs a plan, records what it wrote and undoes it.
"""

from __future__ import annotations

import json
import ntpath
import plistlib
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.cli.browsers import (
    BROWSERS,
    CUSTOM,
    HOST_NAME,
    Browser,
    Context,
    host_manifest_path,
    registry_key,
)
from freight.errors import InputError

DESCRIPTION = "Freight download manager: hands browser downloads to the Freight daemon"
AUTOSTART_LABEL = "dev.freight.daemon"


@dataclass(frozen=True)
class WriteFile:
    path: Path
    content: str
    mode: int = 0o644
    what: str = ""


@dataclass(frozen=True)
class SetRegistryValue:
    key: str  # under HKEY_CURRENT_USER
    name: str  # "" is the key's default value
    value: str
    what: str = ""


Action = WriteFile | SetRegistryValue


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    browsers: list[str] = field(default_factory=list)
    launcher: Path | None = None


def launcher_path(ctx: Context) -> Path:
    return ctx.data_dir / ("freight-host.bat" if ctx.platform == "win32" else "freight-host")


def launcher_script(ctx: Context) -> str:
    """The executable the browser starts. Browsers exec it directly, with no shell."""
    if ctx.platform == "win32":
        # Chrome and Firefox start hosts on Windows through cmd.exe, so a .bat works.
        lines = ["@echo off"]
        if ctx.freight_home:
            lines.append(f'set "FREIGHT_HOME={ctx.freight_home}"')
        lines.append(f'"{ctx.python}" -m freight_host.host %*')
        return "\r\n".join(lines) + "\r\n"
    # The kernel reads the shebang line up to ~127 bytes (older kernels) and splits it at
    # whitespace: use /bin/sh only when the interpreter path cannot go there directly.
    if len(ctx.python) > 120 or re.search(r"\s", ctx.python):
        lines = ["#!/bin/sh",
                 "# Written by `freight install`; `freight uninstall` removes it."]
        if ctx.freight_home:
            lines.append(f"FREIGHT_HOME={_sh_quote(ctx.freight_home)}; export FREIGHT_HOME")
        lines.append(f'exec {_sh_quote(ctx.python)} -m freight_host.host "$@"')
        return "\n".join(lines) + "\n"
    lines = [
        f"#!{ctx.python}",
        "# Written by `freight install`: the browser runs this file directly (no shell) to",
        "# start Freight's native messaging host. `freight uninstall` removes it.",
        "import os",
        "import sys",
        "",
    ]
    if ctx.freight_home:
        lines.append(f"os.environ[\"FREIGHT_HOME\"] = {json.dumps(ctx.freight_home)}")
    lines += ["from freight_host.host import main", "", "sys.exit(main())"]
    return "\n".join(lines) + "\n"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def host_manifest(browser: Browser, launcher: Path, chromium_ids: list[str],
                  gecko_ids: list[str]) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": HOST_NAME,
        "description": DESCRIPTION,
        "path": str(launcher),
        "type": "stdio",
    }
    if browser.family == "firefox":
        manifest["allowed_extensions"] = list(dict.fromkeys(gecko_ids))
    else:
        manifest["allowed_origins"] = [f"chrome-extension://{i}/"
                                       for i in dict.fromkeys(chromium_ids)]
    return manifest


def daemon_command(ctx: Context) -> list[str]:
    return [ctx.python, "-m", "freight", "daemon"]


def desktop_exec_quote(arg: str) -> str:
    """Quote one argument for a .desktop Exec key (Desktop Entry Specification, "Exec")."""
    if arg and not re.search(r"[\s\"'\\><~|&;$*?#()`%=]", arg):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'.replace("%", "%%")


def autostart_actions(ctx: Context) -> list[Action]:
    """Start `freight daemon` at login: XDG autostart, a LaunchAgent, or the HKCU Run key."""
    cmd = daemon_command(ctx)
    env = {"FREIGHT_HOME": ctx.freight_home} if ctx.freight_home else {}
    if ctx.platform == "darwin":
        plist: dict[str, Any] = {"Label": AUTOSTART_LABEL, "ProgramArguments": cmd,
                                 "RunAtLoad": True, "ProcessType": "Interactive"}
        if env:
            plist["EnvironmentVariables"] = env
        path = ctx.home / "Library" / "LaunchAgents" / f"{AUTOSTART_LABEL}.plist"
        return [WriteFile(path, plistlib.dumps(plist).decode("utf-8"), what="LaunchAgent")]
    if ctx.platform == "win32":
        # pythonw.exe: no console window at login. The script carries FREIGHT_HOME, which a
        # Run value cannot set.
        script = ctx.data_dir / "freight-daemon.pyw"
        body = ["import os, sys"]
        if ctx.freight_home:
            body.append(f"os.environ[\"FREIGHT_HOME\"] = {json.dumps(ctx.freight_home)}")
        body += ["from freight.cli import main", 'sys.exit(main(["daemon"]))']
        pythonw = ntpath.join(ntpath.dirname(ctx.python), "pythonw.exe")
        return [
            WriteFile(script, "\n".join(body) + "\n", what="autostart script"),
            SetRegistryValue(r"Software\Microsoft\Windows\CurrentVersion\Run", "Freight",
                             subprocess.list2cmdline([pythonw, str(script)]),
                             what="autostart (HKCU Run)"),
        ]
    words = (["env"] + [f"{k}={v}" for k, v in env.items()] if env else []) + cmd
    entry = "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Name=Freight",
        "Comment=Freight download manager: resumes downloads after login",
        "Exec=" + " ".join(desktop_exec_quote(w) for w in words),
        "Terminal=false",
        "NoDisplay=true",
        "X-GNOME-Autostart-enabled=true",
    ]) + "\n"
    return [WriteFile(ctx.config_home / "autostart" / "freight.desktop", entry,
                      what="XDG autostart entry")]


def plan_install(ctx: Context, browsers: list[str], *, user_data_dir: Path | None = None,
                 chromium_ids: list[str], gecko_ids: list[str],
                 autostart: bool = True) -> Plan:
    """The actions of one `freight install`. Raises InputError (and plans nothing) on bad input."""
    unknown = [b for b in browsers if b not in BROWSERS]
    if unknown:
        raise InputError(f"unknown browser {unknown[0]!r}; known: {', '.join(BROWSERS)}")
    chosen = [BROWSERS[b] for b in dict.fromkeys(browsers)]
    needs_chromium = user_data_dir is not None or any(b.family == "chromium" for b in chosen)
    if needs_chromium and not chromium_ids:
        raise InputError("no Chromium extension ID: the extension's manifest.json has no"
                         " key; pass --extension-id")
    plan = Plan(launcher=launcher_path(ctx))
    launcher = launcher_path(ctx)
    plan.actions.append(WriteFile(launcher, launcher_script(ctx), mode=0o755,
                                  what="host launcher"))
    for browser in chosen:
        path = host_manifest_path(browser, ctx)
        manifest = host_manifest(browser, launcher, chromium_ids, gecko_ids)
        plan.actions.append(WriteFile(path, json.dumps(manifest, indent=2) + "\n",
                                      what=f"host manifest for {browser.label}"))
        keys = {a.key for a in plan.actions if isinstance(a, SetRegistryValue)}
        if ctx.platform == "win32" and registry_key(browser) not in keys:
            plan.actions.append(SetRegistryValue(registry_key(browser), "", str(path),
                                                 what=f"registry key for {browser.label}"))
        plan.browsers.append(browser.name)
    if user_data_dir is not None:
        custom = Browser(CUSTOM, f"Chromium profile {user_data_dir}", "chromium", "", "", "")
        path = user_data_dir / "NativeMessagingHosts" / f"{HOST_NAME}.json"
        plan.actions.append(WriteFile(
            path, json.dumps(host_manifest(custom, launcher, chromium_ids, gecko_ids),
                             indent=2) + "\n",
            what=f"host manifest for the profile {user_data_dir}"))
        plan.browsers.append(CUSTOM)
    if autostart:
        plan.actions += autostart_actions(ctx)
    return plan
