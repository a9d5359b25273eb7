"""Request headers as users and the extension give them: one parser, one secret set.

Secret headers (Cookie, Authorization, Proxy-Authorization) are stored sealed
(:mod:`freight.store`) and never shown; every other header is kept in clear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from freight.errors import InputError

#: Header names (lower case) whose values are credentials: stored sealed, never shown.
SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})


def is_secret(name: str) -> bool:
    return name.lower() in SECRET_HEADERS


def parse_header_lines(lines: Iterable[str]) -> dict[str, str]:
    """``-H 'Name: value'`` lines → {name: value}. Raises InputError naming the bad line.

    RFC 9110 §5.1: a field name is a token, so it holds no white space; §5.5: a value holds
    no CR or LF (a line break would start a second header).
    """
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or any(c in name for c in " \t\r\n") or any(
            c in value for c in "\r\n"
        ):
            raise InputError(f"a header must look like 'Name: value', not {line!r}")
        out[name] = value.strip()
    return out


def split_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Plain headers (kept in clear) and secret ones (Cookie, Authorization: sealed)."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in headers.items():
        (secret if is_secret(name) else plain)[name] = value
    return plain, secret
