"""`freight doctor`'s tray check and `freight status`'s tray line: the tray as a user sees it.

The running daemon says what it shows (its ``status`` reply's ``tray``: docs/PROTOCOL.md);
the doctor's own probe is only the fallback when no daemon runs, because the daemon may have
been started elsewhere (by the browser's native host, without a display, with --no-tray).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from freight.tray import deps as tray_deps

OK, WARN = "ok", "warn"  # doctor's statuses: a tray never breaks the browser link, so no fail
#: (status, detail, fix), which `freight doctor` turns into its check named "tray"
Verdict = tuple[str, str, str]


def check_tray(environ: dict[str, str] | None = None, timeout: float = 10.0, *,
               report: dict[str, Any] | None = None) -> Verdict:
    """The tray as the running daemon shows it (``report``: its ``status``'s ``tray``).

    Without a report (no daemon runs, or one too old to say) the check probes what a daemon
    started now from here would show, and says that it did.
    """
    env = dict(os.environ if environ is None else environ)
    if report is not None:
        return tray_verdict(report, env)
    note = " (no daemon runs: probed from here, as a daemon started now would show it)"
    if sys.platform.startswith("linux") and not (env.get("DISPLAY")
                                                 or env.get("WAYLAND_DISPLAY")):
        return tray_verdict({"shown": False, "backend": None, "menu": False,
                             "reason": "no display (DISPLAY and WAYLAND_DISPLAY are unset)"},
                            env, note)
    # In a child: the GTK and X probes open the display, which may fail in odd ways or hang.
    code = ("import json, sys; from freight.tray.backends import probe_report;"
            " sys.stdout.write(json.dumps(probe_report()))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, env=env)
        probed = json.loads(proc.stdout)
    except subprocess.TimeoutExpired:
        return WARN, "probing the tray backends hung", "check the display connection"
    except ValueError:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        return WARN, f"the tray backends cannot be probed: {last}", tray_deps.short_fix()
    return tray_verdict(probed, env, note)


def tray_verdict(tray: dict[str, Any], environ: dict[str, str], note: str = "") -> Verdict:
    """A tray report as a user sees it: an icon with a menu, one without, or none and why."""
    backend, reason = tray.get("backend"), str(tray.get("reason", ""))
    if tray.get("shown") and tray.get("menu"):
        return OK, f"icon with a menu ({backend} backend){note}", ""
    if tray.get("shown"):
        return WARN, f"icon without a menu ({backend} backend){note}", tray_deps.short_fix()
    detail = f"no icon: {reason}{note}"
    if reason == "--no-tray":
        return WARN, detail, "restart without --no-tray: freight stop && freight start"
    if "no display" in reason:
        if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
            return WARN, detail, ("the daemon was started without a display: restart it"
                                  " from this desktop: freight stop && freight start")
        return WARN, detail, "start Freight from a desktop session"
    if "PYSTRAY_BACKEND" in reason or reason.startswith("unknown tray backend"):
        return WARN, detail, ("unset PYSTRAY_BACKEND (or name a backend that works here),"
                              " then: freight stop && freight start; see freight.log")
    return WARN, detail, f"{tray_deps.short_fix()}; see freight.log"


def tray_line(tray: dict[str, Any]) -> str:
    """`freight status`'s tray line: short; `freight doctor` gives the fix."""
    if tray.get("shown"):
        if tray.get("menu"):
            return f"icon with a menu ({tray.get('backend')} backend)"
        return (f"icon without a menu ({tray.get('backend')} backend);"
                " `freight doctor` says what to install for one")
    return f"no icon: {tray.get('reason')}"
