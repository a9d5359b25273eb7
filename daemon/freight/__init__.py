"""Freight: a download manager with a segmented, resumable engine, a daemon and a browser link."""

__version__ = "0.1.0"

# Version of the wire protocol spoken by the daemon's API (docs/PROTOCOL.md).
PROTOCOL_VERSION = 1
