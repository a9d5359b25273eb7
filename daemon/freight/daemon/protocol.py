"""The daemon's JSON-RPC 2.0 protocol, sans I/O: text in, a call or an error out.

No sockets, no event loop, no store. The server feeds every text frame to :func:`parse`,
which returns either a :class:`Call` (the method is known and every param was checked and
normalised) or a ready :class:`Reply` (an error). The server then runs the call on its handler
and turns the outcome into a reply with :func:`result` or :func:`failure`. Because every param
is validated before any handler runs, a bad request never changes anything.

Spec: JSON-RPC 2.0 (https://www.jsonrpc.org/specification), params by name only. The method
table below is the protocol's single source of truth for names and params (each param's
checker lives in :mod:`freight.daemon.params`); docs/PROTOCOL.md documents it and a test holds
the two together, and another holds the daemon's handler table (``ApiHandler.methods``) to it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from freight.daemon.params import (
    ID,
    RATE,
    Check,
    absolute_dir,
    boolean,
    checksum,
    cookies,
    event_list,
    file_name,
    headers,
    http_url,
    http_urls,
    ids,
    integer,
    nullable,
    one_of,
    settings_object,
    state_list,
    text,
    valid_unicode,
)
from freight.errors import FreightError, InputError
from freight.redact import redact_text
from freight.rpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    STATES_MAX_IDS,
    code_for,
)

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024 * 1024  # bytes; larger frames are closed with 1009 by the server

#: One encoder for every reply and event: json.dumps with these options builds a new one
#: each call, a third of the time of encoding a state event. NaN and Infinity are not JSON
#: (RFC 8259 §6).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Call:
    """A checked request: the handler runs ``method`` with ``(session, **params)``."""

    id: int | str | None  # None: a notification from the client; no reply is sent
    method: str
    params: dict[str, Any]

    @property
    def wants_reply(self) -> bool:
        return self.id is not None


@dataclass(frozen=True)
class Reply:
    id: int | str | None
    message: dict[str, Any]

    def encode(self) -> str:
        return _ENCODER.encode(self.message)


@dataclass(frozen=True)
class Method:
    required: dict[str, Check]
    optional: dict[str, Check]
    #: "id or ids": exactly one of them, normalised to ``ids``.
    targets: bool = False


_TARGETS = {"id": ID, "ids": ids}

#: ``add``'s optional params: ``add_many`` takes the ones that make sense for many files.
_ADD_OPTIONAL: dict[str, Check] = {
    "dir": absolute_dir,
    "name": file_name,
    "headers": headers,
    "cookies": cookies,
    "referrer": nullable(http_url),
    "user_agent": nullable(text(1024)),
    "mime": nullable(text(256)),
    "size_hint": nullable(integer(0, 2**62)),
    "connections": nullable(integer(1, 64)),
    "limit": RATE,
    "checksum": nullable(checksum),
    "paused": boolean,
    "insecure": boolean,
    # Add even when the same file is already there or queued (freight.daemon.duplicates).
    "again": boolean,
}
_ONE_FILE = ("name", "mime", "size_hint")  # what names or describes one file


def _state_ids(name: str, value: Any) -> list[int]:
    if isinstance(value, list) and len(value) > STATES_MAX_IDS:
        raise InputError(
            f"param {name!r} takes at most {STATES_MAX_IDS} ids per call (ask in chunks)",
            param=name)
    return ids(name, value)


#: The protocol: method name → its params. Keep docs/PROTOCOL.md in step (a test checks).
METHODS: dict[str, Method] = {
    "version": Method({}, {}),
    "status": Method({}, {}),
    "add": Method({"url": http_url}, _ADD_OPTIONAL),
    # Many URLs in one request and one transaction (`freight add URL...`): all or none.
    "add_many": Method(
        {"urls": http_urls}, {k: v for k, v in _ADD_OPTIONAL.items() if k not in _ONE_FILE}
    ),
    "list": Method(
        {},
        {"states": state_list, "offset": integer(0, 2**62), "limit": integer(1, 10_000)},
    ),
    "get": Method({"id": ID}, {}),
    # The state of many downloads in one call and one query (`freight wait`).
    "states": Method({"ids": _state_ids}, {}),
    "pause": Method({}, {}, targets=True),
    "resume": Method({}, {}, targets=True),
    "cancel": Method({}, {}, targets=True),
    "remove": Method({}, {"delete_file": boolean}, targets=True),
    "refresh": Method(
        {"id": ID, "url": http_url},
        {"headers": headers, "cookies": cookies, "referrer": nullable(http_url),
         "force": boolean},
    ),
    "move": Method({"id": ID, "to": one_of("top", "bottom", "up", "down")}, {}),
    "set_limits": Method({}, {"global_limit": RATE, "id": ID, "limit": RATE}),
    "get_settings": Method({}, {}),
    "set_settings": Method({"settings": settings_object}, {}),
    "pause_all": Method({}, {}),
    "resume_all": Method({}, {}),
    "open": Method({"id": ID}, {"reveal": boolean}),
    "subscribe": Method({}, {"events": event_list, "rows": boolean, "states": state_list}),
    "shutdown": Method({}, {}),
    # Forget the completed downloads (their files stay): "Clear completed".
    "clear": Method({}, {}),
    # A failed or cancelled download again from zero; a completed one only with again=true.
    "restart": Method({"id": ID}, {"again": boolean}),
}


def check_params(method: str, params: Any) -> dict[str, Any]:
    """Validate and normalise ``params`` for ``method``; raise InputError naming the problem."""
    spec = METHODS[method]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InputError("params must be an object (by name)")
    allowed = set(spec.required) | set(spec.optional) | (set(_TARGETS) if spec.targets else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InputError(f"unknown param {unknown[0]!r} for {method}", param=unknown[0])
    for name, value in params.items():
        valid_unicode(name, value)  # every string, at any depth, before any checker reads it
    out: dict[str, Any] = {}
    for name, check in spec.required.items():
        if name not in params:
            raise InputError(f"param {name!r} is required for {method}", param=name)
        out[name] = check(name, params[name])
    for name, check in spec.optional.items():
        if name in params:
            out[name] = check(name, params[name])
    if spec.targets:
        if ("id" in params) == ("ids" in params):
            raise InputError(f"{method} takes exactly one of 'id' or 'ids'", param="id")
        out["ids"] = [ID("id", params["id"])] if "id" in params else ids("ids", params["ids"])
    if method == "set_limits":
        if "limit" in out and "id" not in out:
            raise InputError("'limit' needs the download's 'id'", param="limit")
        if "id" in out and "limit" not in out:
            raise InputError("'id' needs a 'limit' (bytes/s or null)", param="limit")
        if not out:
            raise InputError("set_limits needs 'global_limit' or 'id' with 'limit'")
    if method == "subscribe" and "states" in out and "download.state" not in out.get(
            "events", ["download.state"]):
        raise InputError("'states' filters download.state events: subscribe to them too",
                         param="states")
    return out


# -- parsing ---------------------------------------------------------------------------------


def _error(
    id: int | str | None, code: int, message: str, kind: str, data: dict[str, Any] | None = None
) -> Reply:
    # Every error message leaves through here: the one redaction point takes credentials out
    # of it, whatever raised it (docs/SECURITY.md).
    return Reply(
        id,
        {
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": redact_text(message),
                      "data": {**(data or {}), "kind": kind}},
        },
    )


def _reject_constant(value: str) -> Any:
    # json accepts NaN and Infinity, which are not JSON (RFC 8259 §6).
    raise ValueError(f"{value} is not valid JSON")


def parse(raw: str | bytes) -> Call | Reply:
    """One text frame → a checked :class:`Call`, or the error :class:`Reply` to send.

    After a Call: run it, then send :func:`result` or :func:`failure` (unless it was a
    notification, ``call.wants_reply`` false).
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(None, PARSE_ERROR, "a message must be UTF-8 JSON", "parse_error")
    if len(raw) > MAX_MESSAGE:
        return _error(None, INVALID_REQUEST, "message too large", "invalid_request")
    try:
        msg = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _error(None, PARSE_ERROR, "not valid JSON", "parse_error")
    if isinstance(msg, list):
        # JSON-RPC 2.0 §6 batches: not supported; one request per frame keeps ordering simple.
        return _error(None, INVALID_REQUEST, "batches are not supported", "invalid_request")
    if not isinstance(msg, dict):
        return _error(None, INVALID_REQUEST, "a request must be an object", "invalid_request")
    raw_id = msg.get("id")
    # §4: an id is a string, a number or null; we refuse fractions and absurd sizes.
    valid_id = raw_id is None or isinstance(raw_id, str) and len(raw_id) <= 256 or (
        isinstance(raw_id, int) and not isinstance(raw_id, bool) and abs(raw_id) < 2**53
    )
    reply_id = raw_id if valid_id else None
    if msg.get("jsonrpc") != "2.0":
        return _error(reply_id, INVALID_REQUEST, "'jsonrpc' must be \"2.0\"", "invalid_request")
    if not valid_id:
        return _error(
            None, INVALID_REQUEST, "'id' must be a string or an integer", "invalid_request"
        )
    if "id" in msg and raw_id is None:
        return _error(None, INVALID_REQUEST, "'id' must not be null", "invalid_request")
    method = msg.get("method")
    if not isinstance(method, str):
        return _error(reply_id, INVALID_REQUEST, "'method' must be a string", "invalid_request")
    extra = set(msg) - {"jsonrpc", "id", "method", "params"}
    if extra:
        return _error(
            reply_id, INVALID_REQUEST, f"unknown member {sorted(extra)[0]!r}", "invalid_request"
        )
    if method not in METHODS:
        return _error(
            reply_id, METHOD_NOT_FOUND, f"no method {method[:100]!r}", "method_not_found"
        )
    try:
        params = check_params(method, msg.get("params"))
    except InputError as exc:
        return _error(reply_id, INVALID_PARAMS, exc.message, exc.kind, _jsonable(exc.data))
    return Call(raw_id, method, params)


# -- replies ---------------------------------------------------------------------------------


def result(call: Call, value: Any) -> Reply:
    return Reply(call.id, {"jsonrpc": "2.0", "id": call.id, "result": value})


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, float) and not math.isfinite(value):
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = str(value)
        out[key] = value
    return out


def failure(call: Call, exc: BaseException) -> Reply:
    """Map an exception from a handler to its error reply (docs/PROTOCOL.md "Error codes").

    Freight's own errors keep their message and data; anything else is a bug: logged with
    its traceback, answered with -32603 and no details.
    """
    code = code_for(exc)
    if code is not None:
        assert isinstance(exc, FreightError)
        return _error(call.id, code, exc.message, exc.kind, _jsonable(exc.data))
    if isinstance(exc, FreightError):
        # Errors of the local machine (disk, store) are not the client's fault but are
        # expected conditions: say what they are.
        return _error(call.id, INTERNAL_ERROR, exc.message, exc.kind, _jsonable(exc.data))
    log.error("internal error in %s", call.method, exc_info=exc)
    return _error(call.id, INTERNAL_ERROR, "internal error (see the daemon's log)", "internal")


def notification(method: str, params: dict[str, Any]) -> str:
    """An event as a JSON-RPC notification (no id)."""
    return _ENCODER.encode({"jsonrpc": "2.0", "method": method, "params": params})
