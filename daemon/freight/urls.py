"""The one check of a URL given to Freight, for the API's ``add``/``refresh`` and ``freight get``.

A URL is accepted when Freight can fetch it as it stands: an absolute ``http`` or ``https``
URL (RFC 9110 §4.2) with a host and, when given, a port that parses; no spaces and no
C0 control characters anywhere (RFC 3986 §2 allows neither unencoded, and a CR or LF would
end a request line early: request smuggling, RFC 9112 §3). The URL is returned unchanged, never
"repaired": what was checked is what gets fetched.

Errors never quote the URL: it may carry userinfo (a secret, docs/SECURITY.md); the caller
knows which URL it gave.

Userinfo (``http://user:pass@host/``) is a credential, not part of what names the file: where a
URL enters Freight (``freight get``, the API's ``add`` and ``refresh``) it is taken out
(:func:`split_credentials`) and kept as the download's sealed ``Authorization: Basic``, so
nothing Freight stores, returns, prints or logs carries the password. The engine scopes that
header to the download's first origin, as it scoped the userinfo (engine/http/request.py).
"""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit, urlunsplit

from freight.errors import InputError

SCHEMES = ("http", "https")


def problem(text: str) -> str | None:
    """What ``text`` must be to be accepted, when it is not ("a URL without spaces ..."),
    as the object of "must be"; None when it is an acceptable URL."""
    if any(c in text for c in "\r\n\t ") or any(ord(c) < 0x20 for c in text):
        return "a URL without spaces or control characters"
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        return "a valid http or https URL"
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        return "an http or https URL with a host"
    return None


def check_http_url(text: str) -> str:
    """``text`` unchanged when it is an acceptable URL; else raise InputError saying why."""
    what = problem(text)
    if what is not None:
        raise InputError(f"not an http(s) URL: it must be {what}", reason=what)
    return text


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its userinfo, and the ``Authorization: Basic`` value it stood for
    (None when there was none). RFC 7617 §2: ``base64(user ":" password)``, user and
    password percent-decoded (RFC 3986 §3.2.1) and sent as UTF-8 (§2.1, ``charset=UTF-8``).
    An empty userinfo (``http://@host/``) is dropped and stands for nothing."""
    if "@" not in url:  # no "@" anywhere: none in the authority either
        return url, None
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    bare = urlunsplit(parts._replace(netloc=host))
    if not userinfo:
        return bare, None
    user, _, password = userinfo.partition(":")
    token = f"{unquote(user)}:{unquote(password)}".encode()
    return bare, "Basic " + base64.b64encode(token).decode("ascii")
