"""Freight's native messaging host: the browser extension's only door to the daemon.

The browser starts ``freight-host`` (through the launcher that ``freight install`` writes) and
talks to it on stdio with native messaging framing (:mod:`freight_host.framing`); the host
relays JSON-RPC to the daemon's WebSocket (:mod:`freight_host.host`). Registration with the
browsers and autostart at login live in :mod:`freight_host.register`.
"""

#: The name browsers know the host by (the manifest's ``name`` and file name).
HOST_NAME = "dev.freight.host"

__version__ = "0.1.0"
