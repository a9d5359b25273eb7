"""Freight's native messaging host: the browser extension's only door to the daemon.

The browser starts ``freight-host`` (:mod:`freight_host.host`, through the launcher that
``freight install`` writes, :mod:`freight.cli.register`) and talks to it on stdio with native
messaging framing (:mod:`freight_host.framing`); the host relays JSON-RPC
(:mod:`freight_host.relay`) to the daemon's WebSocket (:mod:`freight_host.link`). This
package imports :mod:`freight`; nothing in :mod:`freight` imports it.
"""

__version__ = "0.1.0"
