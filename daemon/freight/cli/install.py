"""`freight install`, `freight uninstall` and `freight doctor`: wired into freight.cli."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from freight import extension_files
from freight.cli import browsers, effects, register
from freight.config import paths_from_env
from freight.errors import InputError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def configure(subparsers: Any) -> None:
    """Add the install, uninstall and doctor subcommands to freight's argparse subparsers."""
    p = subparsers.add_parser(
        "install", help="register the native host with the browsers; start Freight at login",
        description="Write the native messaging host manifest for every browser found (or"
        " those named), the launcher they start, and an autostart entry for the daemon.")
    p.add_argument("--browser", action="append", default=[], metavar="NAME",
                   choices=list(browsers.BROWSERS),
                   help="only this browser (repeatable): " + ", ".join(browsers.BROWSERS))
    p.add_argument("--user-data-dir", type=Path, metavar="DIR",
                   help="also register in this Chromium profile folder (DIR/NativeMessagingHosts)")
    p.add_argument("--extension-id", action="append", default=[], metavar="ID",
                   help="allow another extension (Chromium ID or Firefox add-on id); repeatable")
    p.add_argument("--no-autostart", action="store_true", help="do not start Freight at login")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run_install)

    p = subparsers.add_parser("uninstall", help="remove everything `freight install` wrote")
    p.add_argument("--json", action="store_true", help="print what was removed as JSON")
    p.set_defaults(func=run_uninstall)

    p = subparsers.add_parser(
        "doctor", help="check the daemon, the token, the browser link and the folders",
        description="Check every link between the browser and the daemon and say how to fix"
        " what is broken. Exit code 0 only when everything works.")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the daemon and the host (default 10)")
    p.set_defaults(func=run_doctor)


def _context() -> browsers.Context:
    return browsers.Context.for_paths(paths_from_env())


def run_install(args: argparse.Namespace) -> int:
    ctx = _context()
    folder = extension_files.extension_dir()
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        print(f"freight install: the browser extension is missing from this install ({manifest}"
              " does not exist); reinstall Freight", file=sys.stderr)
        return EXIT_FAIL
    try:
        chromium_ids, gecko_ids = browsers.split_extension_ids(args.extension_id)
        own = browsers.read_extension_id(manifest)
        if own:
            chromium_ids.insert(0, own)
        gecko_ids.insert(0, browsers.GECKO_ID)
        if args.browser:
            chosen = args.browser
        elif args.user_data_dir is not None:
            chosen = []  # only the profile folder asked for
        else:
            chosen = effects.detect_browsers(ctx)
        udd = args.user_data_dir.expanduser().absolute() if args.user_data_dir else None
        plan = register.plan_install(ctx, chosen, user_data_dir=udd,
                                     chromium_ids=chromium_ids, gecko_ids=gecko_ids,
                                     autostart=not args.no_autostart)
        previous = effects.load_record(ctx)
    except InputError as exc:
        print(f"freight install: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        record = effects.apply(plan, ctx, udd)
    except OSError as exc:
        partial: effects.InstallRecord = getattr(exc, "record", effects.InstallRecord())
        effects.save_record(ctx, (previous or effects.InstallRecord()).merge(partial))
        print(f"freight install: {exc}; `freight uninstall` removes what was written",
              file=sys.stderr)
        return EXIT_FAIL
    effects.save_record(ctx, (previous or effects.InstallRecord()).merge(record))
    if args.json:
        print(json.dumps({"written": record.files, "registry": record.registry,
                          "browsers": plan.browsers, "chromium_ids": chromium_ids,
                          "gecko_ids": gecko_ids, "extension": str(folder)}, indent=2))
        return EXIT_OK
    for action in plan.actions:
        where = action.path if isinstance(action, register.WriteFile) else \
            f"HKCU\\{action.key}"
        print(f"wrote {action.what}: {where}")
    if not plan.browsers:
        print("no browser found: name one with --browser "
              f"({', '.join(browsers.BROWSERS)}) or --user-data-dir", file=sys.stderr)
    else:
        print(f"extension IDs allowed: {', '.join(chromium_ids + gecko_ids)}")
    print()
    for line in load_instructions(folder, plan.browsers):
        print(line)
    if plan.browsers:
        print("check everything with: freight doctor")
    return EXIT_OK


def load_instructions(folder: Path, chosen: list[str]) -> list[str]:
    """How to load the extension from `folder` into the browsers registered (all families
    when none was): a browser cannot be told from outside to load an unpacked extension."""
    families = {browsers.BROWSERS[b].family if b in browsers.BROWSERS else "chromium"
                for b in chosen} or {"chromium", "firefox"}
    lines = [f"the extension's folder: {folder}"]
    if "chromium" in families:
        lines += ["load it in Chromium (Chrome, Edge, Brave, Vivaldi, Opera): open"
                  " chrome://extensions, turn on Developer mode, click 'Load unpacked' and"
                  f" choose {folder}"]
    if "firefox" in families:
        lines += ["load it in Firefox: about:debugging#/runtime/this-firefox -> 'Load"
                  f" Temporary Add-on' -> {folder / 'manifest.json'} (it stays until"
                  " Firefox restarts; the README's 'Firefox' section says how to keep it)"]
    return lines


def run_uninstall(args: argparse.Namespace) -> int:
    ctx = _context()
    try:
        record = effects.load_record(ctx)
    except InputError as exc:
        print(f"freight uninstall: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if record is None:
        print("nothing to remove: no install record in " + str(ctx.record_file))
        return EXIT_OK
    removed = effects.undo(record)
    ctx.record_file.unlink(missing_ok=True)
    if args.json:
        print(json.dumps({"removed": removed}, indent=2))
    else:
        for item in removed:
            print(f"removed {item}")
    return EXIT_OK


def run_doctor(args: argparse.Namespace) -> int:
    from freight.cli import doctor

    return doctor.main(json_output=args.json, timeout=args.timeout)
