"""The daemon's JSON-RPC 2.0 protocol, sans I/O: text in, a call or an error out.

No sockets, no event loop, no store. The server feeds every text frame to :func:`parse`,
which returns either a :class:`Call` (the method is known and every param was checked and
normalised) or a ready :class:`Reply` (an error). The server then runs the call on its handler
and turns the outcome into a reply with :func:`result` or :func:`failure`. Because every param
is validated before any handler runs, a bad request never changes anything.

Spec: JSON-RPC 2.0 (https://www.jsonrpc.org/specification), params by name only. The method
table below is the protocol's single source of truth for names and params; docs/PROTOCOL.md
documents it and a test holds the two together.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from freight import config
from freight.errors import FreightError, InputError
from freight.models import DownloadState
from freight.rpc import (
    EVENTS,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    code_for,
)

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024 * 1024  # bytes; larger frames are closed with 1009 by the server



@dataclass(frozen=True)
class Call:
    """A checked request: call ``handler.<method>(session, **params)``."""

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
        return json.dumps(self.message, separators=(",", ":"), allow_nan=False)


# -- param checkers: each returns the normalised value or raises InputError -------------------

Check = Callable[[str, Any], Any]


def _bad(name: str, what: str) -> InputError:
    return InputError(f"param {name!r} must be {what}", param=name)


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(name, "an integer")
        if minimum is not None and value < minimum:
            raise _bad(name, f">= {minimum}")
        if maximum is not None and value > maximum:
            raise _bad(name, f"<= {maximum}")
        return value

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "true or false")
    return value


def text(max_len: int = 8192, *, empty: bool = False) -> Check:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _bad(name, "a string")
        if not empty and not value:
            raise _bad(name, "a non-empty string")
        if len(value) > max_len:
            raise _bad(name, f"at most {max_len} characters")
        if "\x00" in value:
            raise _bad(name, "free of NUL characters")
        return value

    return check


def nullable(check: Check) -> Check:
    def wrapped(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return wrapped


def http_url(name: str, value: Any) -> str:
    value = text(16384)(name, value)
    if any(c in value for c in "\r\n\t ") or any(ord(c) < 0x20 for c in value):
        raise _bad(name, "a URL without spaces or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise _bad(name, "a valid http or https URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _bad(name, "an http or https URL with a host")
    return value


def absolute_dir(name: str, value: Any) -> str:
    value = text(4096)(name, value)
    if not value.startswith("/"):
        raise _bad(name, "an absolute path")
    return value


def file_name(name: str, value: Any) -> str:
    value = text(255)(name, value)
    if "/" in value or value in (".", ".."):
        raise _bad(name, "a file name without '/'")
    return value


# RFC 9110 §5.1: field-name = token; §5.5: field values carry no CR, LF or NUL.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def headers(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _bad(name, "an object of header name to value")
    if len(value) > 64:
        raise _bad(name, "at most 64 headers")
    out: dict[str, str] = {}
    for key, val in value.items():
        if not _TOKEN.match(key) or len(key) > 256:
            raise InputError(f"header name {key[:64]!r} is not a valid token", param=name)
        if not isinstance(val, str) or len(val) > 16384 or any(c in val for c in "\r\n\x00"):
            raise InputError(
                f"header {key!r} must be a string without CR, LF or NUL", param=name
            )
        out[key] = val
    return out


def cookies(name: str, value: Any) -> str:
    """A Cookie header value, from a string or a list of {name, value} (RFC 6265 §4.2.1)."""
    if isinstance(value, str):
        if len(value) > 65536 or any(c in value for c in "\r\n\x00"):
            raise _bad(name, "a cookie string without CR, LF or NUL")
        return value
    if not isinstance(value, list) or len(value) > 1000:
        raise _bad(name, "a string or a list of {name, value}")
    pairs = []
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("value"), str)
        ):
            raise _bad(name, "a string or a list of {name, value}")
        n, v = item["name"], item["value"]
        if not _TOKEN.match(n) or any(c in v for c in ";\r\n\x00"):
            raise InputError(f"cookie {n[:64]!r} has an invalid name or value", param=name)
        pairs.append(f"{n}={v}")
    return "; ".join(pairs)


_DIGEST_SIZES = {"sha256": 64, "sha512": 128, "sha1": 40, "md5": 32}


def checksum(name: str, value: Any) -> str:
    """'sha256:HEX' (or '=' as separator; sha512, sha1, md5 too) → 'algo:hex' lower case."""
    value = text(200)(name, value)
    sep = ":" if ":" in value else "="
    algo, _, digest = value.partition(sep)
    algo, digest = algo.strip().lower(), digest.strip().lower()
    size = _DIGEST_SIZES.get(algo)
    if size is None or not re.fullmatch(f"[0-9a-f]{{{size}}}", digest):
        raise _bad(name, "'sha256:' followed by 64 hex digits (or sha512, sha1, md5)")
    return f"{algo}:{digest}"


def state_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _bad(name, "a non-empty list of states")
    known = {s.value for s in DownloadState}
    for item in value:
        if item not in known:
            raise _bad(name, "a list of " + ", ".join(sorted(known)))
    return list(dict.fromkeys(value))


def event_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _bad(name, "a list of event names")
    for item in value:
        if item not in EVENTS:
            raise _bad(name, "a list of " + ", ".join(EVENTS))
    return list(dict.fromkeys(value))


def one_of(*choices: str) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise _bad(name, "one of " + ", ".join(choices))
        return str(value)

    return check


def settings_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise _bad(name, "a non-empty object of setting name to value")
    return {key: config.validate_setting(key, val) for key, val in value.items()}


ID = integer(1, 2**62)
RATE = nullable(integer(1, 2**50))


def ids(name: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > 100_000:
        raise _bad(name, "a non-empty list of download ids")
    return list(dict.fromkeys(ID(name, v) for v in value))


@dataclass(frozen=True)
class Method:
    required: dict[str, Check]
    optional: dict[str, Check]
    #: "id or ids": exactly one of them, normalised to ``ids``.
    targets: bool = False


_TARGETS = {"id": ID, "ids": ids}

#: The protocol: method name → its params. Keep docs/PROTOCOL.md in step (a test checks).
METHODS: dict[str, Method] = {
    "version": Method({}, {}),
    "status": Method({}, {}),
    "add": Method(
        {"url": http_url},
        {
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
        },
    ),
    "list": Method(
        {},
        {"states": state_list, "offset": integer(0, 2**62), "limit": integer(1, 10_000)},
    ),
    "get": Method({"id": ID}, {}),
    "pause": Method({}, {}, targets=True),
    "resume": Method({}, {}, targets=True),
    "cancel": Method({}, {}, targets=True),
    "remove": Method({}, {"delete_file": boolean}, targets=True),
    "refresh": Method(
        {"id": ID, "url": http_url},
        {"headers": headers, "cookies": cookies, "referrer": nullable(http_url)},
    ),
    "move": Method({"id": ID, "to": one_of("top", "bottom", "up", "down")}, {}),
    "set_limits": Method({}, {"global_limit": RATE, "id": ID, "limit": RATE}),
    "get_settings": Method({}, {}),
    "set_settings": Method({"settings": settings_object}, {}),
    "pause_all": Method({}, {}),
    "resume_all": Method({}, {}),
    "open": Method({"id": ID}, {"reveal": boolean}),
    "subscribe": Method({}, {"events": event_list}),
    "shutdown": Method({}, {}),
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
    return out


# -- parsing ---------------------------------------------------------------------------------


def _error(
    id: int | str | None, code: int, message: str, kind: str, data: dict[str, Any] | None = None
) -> Reply:
    return Reply(
        id,
        {
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message, "data": {**(data or {}), "kind": kind}},
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
    return json.dumps(
        {"jsonrpc": "2.0", "method": method, "params": params},
        separators=(",", ":"),
        allow_nan=False,
    )
