"""`freight doctor`'s finding when the daemon does not answer: why it is down and a fix that
works. Its port may be held by another program (named when this user can see it,
:mod:`freight.ports`), or its last start may have failed for a reason it recorded
(:mod:`freight.starterror`); otherwise it is simply not running.
"""

from __future__ import annotations

from freight import config, daemonfile, ports, starterror
from freight.store import saved_setting


def daemon_down(paths: config.Paths, error: Exception) -> tuple[str, str]:
    """(detail, fix) for a daemon that is not reachable."""
    port = int(saved_setting(paths.database, "port"))
    recorded = starterror.read(paths)
    live = daemonfile.read_live(paths)
    if live is not None:
        # Freight's own daemon runs (it holds the instance lock) but did not answer: the port
        # is its own, and moving Freight elsewhere would not help.
        return (f"the daemon (pid {live['pid']}) runs but does not answer: {error}",
                "freight stop && freight start")
    if port and not ports.is_free(port):
        found = ports.holder(port)
        who = found.describe() if found else "another program"
        # A port number checked free just now: the fix is one that works, not a guess.
        return (f"not running: port {port}, which the settings name, is held by {who}",
                f"freight start --port {ports.free_port_near(port)}")
    if recorded is not None:
        if recorded.kind in ("port_taken", "port_refused") and port and ports.is_free(port):
            return (f"not running; the last start failed ({recorded.message}), but port"
                    f" {port} is free now", "freight start")
        return f"not running: the last start failed: {recorded.message}", recorded.fix
    return f"not reachable: {error}", "freight start"
