"""The daemon itself: `freight daemon|start|stop|status|token`.

Each ``func(args) -> int`` returns the exit code: 0 fine, 1 failed (or no daemon), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from freight.cli.common import say_error, setup_paths
from freight.cli.terminal import say, terminal_text
from freight.errors import FreightError
from freight.models import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from freight.units import format_rate


def configure(sub: Any) -> None:
    p = sub.add_parser("daemon", help="run the daemon in the foreground")
    p.add_argument("--no-tray", action="store_true", help="no tray icon")
    p.add_argument("--port", type=int, metavar="N", help="API port (0: any free port)")
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("start", help="start the daemon in the background")
    p.add_argument("--port", type=int, metavar="N",
                   help="API port, kept for every later start (0: any free port)")
    p.set_defaults(func=cmd_start)
    p = sub.add_parser("stop", help="stop the daemon gracefully")
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("status", help="is the daemon running, and what is it doing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("token", help="print the API token")
    p.add_argument("--rotate", action="store_true", help="replace it (clients must reconnect)")
    p.set_defaults(func=cmd_token)


def _port_ok(port: int | None) -> bool:
    if port is not None and not 0 <= port <= 65535:
        say_error("--port must be between 0 and 65535")
        return False
    return True


def cmd_daemon(args: argparse.Namespace) -> int:
    from freight.daemon.app import run_daemon

    if not _port_ok(args.port):
        return EXIT_USAGE
    return run_daemon(setup_paths(), port=args.port, tray=not args.no_tray)


def cmd_start(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from freight.client import daemon_info, ping, start_daemon

    if not _port_ok(args.port):
        return EXIT_USAGE
    paths = setup_paths()
    running = daemon_info(paths) if ping(paths) is not None else None
    if running is not None and args.port not in (None, 0):
        at = urlsplit(str(running["url"])).port
        if at != args.port:
            say_error(f"the daemon already runs on port {at} (pid {running['pid']}); to move it"
                      f" to port {args.port}: freight stop && freight start --port {args.port}")
            return EXIT_FAILED
    try:
        info = start_daemon(paths, port=args.port)
    except FreightError as exc:
        say_error(f"cannot start the daemon: {exc}")
        fix = exc.data.get("fix")
        if fix:
            print(f"  fix: {terminal_text(fix)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"freight daemon running: pid {info['pid']}, {info['url']}")
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    from freight.client import Client, daemon_info

    paths = setup_paths()
    info = daemon_info(paths)
    if info is None:
        print("freight daemon is not running")
        return EXIT_OK
    try:
        with Client.connect(paths) as client:
            client.call("shutdown")
    except FreightError as exc:
        say_error(f"{exc}; sending SIGTERM to pid {info['pid']}")
        import signal

        try:
            os.kill(int(info["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            return EXIT_OK
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if daemon_info(paths) is None:
            print("freight daemon stopped")
            return EXIT_OK
        time.sleep(0.05)
    say_error(f"the daemon (pid {info['pid']}) is still running")
    return EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from freight.client import Client, daemon_info

    paths = setup_paths()
    status: dict[str, Any] = {"running": False}
    if daemon_info(paths) is not None:
        try:
            with Client.connect(paths, timeout=3) as client:
                status = {"running": True, **client.call("status", timeout=5)}
        except FreightError as exc:
            status = {"running": False, "error": str(exc)}
    if args.json:
        print(json.dumps(status))
    elif status["running"]:
        limit = status.get("global_limit")
        say(f"freight daemon running: pid {status['pid']}, {status['url']}")
        say(
            f"  {status['active']} active, {status['queued']} queued, {status['paused']} paused,"
            f" {status['failed']} need attention; {format_rate(status['speed'])}"
            f" (limit: {format_rate(limit) if limit else 'none'})"
        )
        if isinstance(status.get("tray"), dict):
            from freight.cli.traycheck import tray_line

            say(f"  tray: {tray_line(status['tray'])}")
        schedule = status.get("schedule")
        if isinstance(schedule, dict) and schedule.get("next_change"):
            from freight.cli.schedule import schedule_line

            say(f"  schedule: {schedule_line(schedule)}")
        keyring = status.get("keyring") or {}
        if keyring.get("fallback"):
            say(f"  warning: no OS keyring; secrets kept in files under {keyring.get('path')}")
    else:
        say("freight daemon is not running" + (f" ({status['error']})" if "error" in status
                                               else ""))
    return EXIT_OK if status["running"] else EXIT_FAILED


def cmd_token(args: argparse.Namespace) -> int:
    from freight import secrets

    paths = setup_paths()
    try:
        token = secrets.rotate_token(paths) if args.rotate else secrets.get_token(paths)
    except Exception as exc:  # keyring backends raise their own types
        say_error(f"cannot read the token: {exc}")
        return EXIT_FAILED
    print(token)
    if args.rotate:
        print("token rotated: clients must use the new one", file=sys.stderr)
    return EXIT_OK
