"""The API's param checkers: each takes a param's name and value and returns the value
normalised, or raises :class:`~freight.errors.InputError` saying what the param must be
("param 'url' must be ..."), so that a bad request is refused before any handler runs.

The method table in :mod:`freight.daemon.protocol` names a checker for every param; this
module knows nothing of methods. URLs are checked by :mod:`freight.urls`, the one URL check
that ``freight get`` shares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from freight import config, urls
from freight.daemon.hookrules import check_settings
from freight.engine.checksum import normalize_checksum
from freight.errors import InputError
from freight.headers import TOKEN, field_problem
from freight.models import DownloadState
from freight.rpc import EVENTS

Check = Callable[[str, Any], Any]


def _bad(name: str, what: str) -> InputError:
    return InputError(f"param {name!r} must be {what}", param=name)


UNICODE = "valid Unicode (a lone surrogate, U+D800-U+DFFF, is not a character)"


def valid_unicode(name: str, value: Any) -> Any:
    """Refuse ``value`` if any string in it (list items, object keys and values, at any depth)
    holds a lone surrogate, which JSON's ``\\ud800`` escape can carry but UTF-8, SQLite, the
    file system and HTTP cannot; the value itself is returned unchanged."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not config.is_unicode(item):
                raise InputError(f"param {name!r}{where} must be {UNICODE}", param=name)
        elif isinstance(item, dict):
            for key, val in item.items():
                # Name the member (a setting, a header) when its own name is fine.
                inner = where or (f" (at {key[:64]!r})" if config.is_unicode(key) else "")
                stack += [(key, where), (val, inner)]
        elif isinstance(item, list):
            # Name the item (1-based, as a user counts the URLs given) when nothing outer is.
            stack += [(v, where or f" (item {n})") for n, v in enumerate(item, 1)]
    return value


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
        return valid_unicode(name, value)

    return check


def nullable(check: Check) -> Check:
    def wrapped(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return wrapped


def http_url(name: str, value: Any) -> str:
    value = text(16384)(name, value)
    what = urls.problem(value)
    if what is not None:
        raise _bad(name, what)
    return value


#: Most URLs one ``add_many`` takes (its message must also fit in 1 MiB).
MAX_URLS = 10_000


def http_urls(name: str, value: Any) -> list[str]:
    """A non-empty list of URLs, each as :func:`http_url`; a bad one is named by its place
    (1-based, "item 700 of 1000"), never quoted: it may hold a password."""
    if not isinstance(value, list) or not value or len(value) > MAX_URLS:
        raise _bad(name, f"a list of 1 to {MAX_URLS:,} URLs")
    for n, item in enumerate(value, 1):
        try:
            http_url(name, item)
        except InputError as exc:
            what = exc.message.split(" must be ", 1)[-1]
            raise InputError(f"param {name!r} item {n} of {len(value)} must be {what}",
                             param=name, position=n) from None
    return list(value)


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


def headers(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _bad(name, "an object of header name to value")
    if len(value) > 64:
        raise _bad(name, "at most 64 headers")
    valid_unicode(name, value)
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(val, str):
            raise InputError(f"header {key!r} must be a string without CR, LF or NUL",
                             param=name)
        problem = field_problem(key, val)
        if problem is not None:
            raise InputError(problem, param=name)
        out[key] = val
    return out


def cookies(name: str, value: Any) -> str:
    """A Cookie header value, from a string or a list of {name, value} (RFC 6265 §4.2.1)."""
    if isinstance(value, str | list) and len(value) <= 65536:
        valid_unicode(name, value)
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
        if not TOKEN.match(n) or any(c in v for c in ";\r\n\x00"):
            raise InputError(f"cookie {n[:64]!r} has an invalid name or value", param=name)
        pairs.append(f"{n}={v}")
    return "; ".join(pairs)




def checksum(name: str, value: Any) -> str:
    """'sha256:HEX' (or '=' as separator; sha512, sha1, md5 too) → 'algo:hex' lower case."""
    value = text(200)(name, value)
    try:
        return normalize_checksum(value)  # the one syntax, freight.engine.checksum
    except InputError:
        raise _bad(name, "'sha256:' followed by 64 hex digits (or sha512, sha1, md5)") from None


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
    valid_unicode(name, value)
    try:
        check_settings(value)  # an on_complete string never reaches the store, nor a shell
        return {key: config.validate_setting(key, val) for key, val in value.items()}
    except InputError as exc:
        raise InputError(exc.message, **{**exc.data, "param": name}) from None


ID = integer(1, 2**62)
RATE = nullable(integer(1, 2**50))


def ids(name: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > 100_000:
        raise _bad(name, "a non-empty list of download ids")
    return list(dict.fromkeys(ID(name, v) for v in value))
