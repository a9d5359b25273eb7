"""Request headers as users and the extension give them: one parser, one secret set.

Secret headers (Cookie, Authorization, Proxy-Authorization) are stored sealed
(:mod:`freight.store`) and never shown; every other header is kept in clear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from freight.errors import InputError

#: Header names (lower case) whose values are credentials: stored sealed, never shown.
SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})


#: RFC 9110 §5.1: a field name is a token (§5.6.2); the API's cookie names are tokens too.
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
MAX_NAME = 256
MAX_VALUE = 16384


def field_problem(name: str, value: str) -> str | None:
    """Why ``name: value`` cannot be sent as a header, or None when it can. §5.5: a value
    holds no CR, LF or NUL (a line break would start a second header: header injection)."""
    if not TOKEN.match(name) or len(name) > MAX_NAME:
        return f"header name {name[:64]!r} is not a valid token"
    if len(value) > MAX_VALUE or any(c in value for c in "\r\n\x00"):
        return f"header {name!r} must be a string without CR, LF or NUL"
    return None


def is_secret(name: str) -> bool:
    return name.lower() in SECRET_HEADERS


def parse_header_lines(lines: Iterable[str]) -> dict[str, str]:
    """``-H 'Name: value'`` lines → {name: value}. Raises InputError naming the bad line,
    by the same rules as the API's ``headers`` param (:func:`field_problem`)."""
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise InputError(f"a header must look like 'Name: value', not {line!r}")
        problem = field_problem(name, value)
        if problem is not None:
            raise InputError(f"{problem}, in {line!r}")
        out[name] = value
    return out


def split_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Plain headers (kept in clear) and secret ones (Cookie, Authorization: sealed)."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in headers.items():
        (secret if is_secret(name) else plain)[name] = value
    return plain, secret


def with_basic(secret: Mapping[str, str], authorization: str | None) -> dict[str, str]:
    """The secret headers with the URL userinfo's ``Authorization: Basic`` added
    (freight.urls.split_credentials), unless the user gave an Authorization of their own:
    an explicit header wins and the userinfo is dropped (as curl does with ``-H``)."""
    out = dict(secret)
    if authorization and not any(k.lower() == "authorization" for k in out):
        out["Authorization"] = authorization
    return out
