"""The vocabulary every side of Freight's JSON-RPC link shares (docs/PROTOCOL.md).

The daemon's codec (:mod:`freight.daemon.protocol`), the sync client (:mod:`freight.client`)
and the native host all take the protocol version, the error codes and the event names from
here; ``CODES`` in ``extension/js/rpc.js`` repeats the codes the extension names, and
tests/extension/test_rpc_codes.py holds it to this table.
"""

from __future__ import annotations

from freight.errors import (
    FreightError,
    IllegalTransition,
    InputError,
    NotFound,
    RefreshRefused,
    ShuttingDown,
)

#: Version of the wire protocol spoken by the daemon's API.
PROTOCOL_VERSION = 1

# JSON-RPC 2.0 §5.1 reserved codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Freight's own, from the daemon.
NOT_FOUND = -32001
ILLEGAL_TRANSITION = -32002
SHUTTING_DOWN = -32003
REFRESH_REFUSED = -32004
# From the native host: no daemon answers and none could be started.
DAEMON_UNAVAILABLE = -32010
# Made by the extension itself, never sent on the wire: the host is missing or exited; no
# answer came in time.
HOST_UNAVAILABLE = -32011
TIMEOUT = -32012

#: Every code by its name, as docs/PROTOCOL.md and extension/js/rpc.js spell them.
CODES: dict[str, int] = {
    "PARSE_ERROR": PARSE_ERROR,
    "INVALID_REQUEST": INVALID_REQUEST,
    "METHOD_NOT_FOUND": METHOD_NOT_FOUND,
    "INVALID_PARAMS": INVALID_PARAMS,
    "INTERNAL_ERROR": INTERNAL_ERROR,
    "NOT_FOUND": NOT_FOUND,
    "ILLEGAL_TRANSITION": ILLEGAL_TRANSITION,
    "SHUTTING_DOWN": SHUTTING_DOWN,
    "REFRESH_REFUSED": REFRESH_REFUSED,
    "DAEMON_UNAVAILABLE": DAEMON_UNAVAILABLE,
    "HOST_UNAVAILABLE": HOST_UNAVAILABLE,
    "TIMEOUT": TIMEOUT,
}

#: Freight's errors and the code each is answered with, narrowest first. The daemon maps an
#: exception to its code with :func:`code_for`; a client maps a code back with
#: :func:`error_class`, so both ends speak one tree.
ERROR_CODES: tuple[tuple[type[FreightError], int], ...] = (
    (NotFound, NOT_FOUND),
    (IllegalTransition, ILLEGAL_TRANSITION),
    (RefreshRefused, REFRESH_REFUSED),
    (InputError, INVALID_PARAMS),
    (ShuttingDown, SHUTTING_DOWN),
)


def code_for(exc: BaseException) -> int | None:
    """The code of the narrowest class in :data:`ERROR_CODES` that ``exc`` is, else None."""
    for cls, code in ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return None


def error_class(code: int) -> type[FreightError] | None:
    """The exception a client raises for ``code``; None for codes without one."""
    for cls, known in ERROR_CODES:
        if known == code:
            return cls
    return None


#: Ids per ``states`` request: the answer (~50 bytes an id) stays far below 1 MiB, which the
#: native host's browser side also caps, and one request never holds the daemon's loop long.
STATES_MAX_IDS = 10_000

#: Every notification the daemon sends (docs/PROTOCOL.md "Events").
EVENTS = (
    "download.added",
    "download.state",
    "download.changed",
    "download.progress",
    "download.removed",
    "settings.changed",
)
