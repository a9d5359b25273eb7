"""What a transfer asks of a source: one byte range of one URL, with what it knows of the file.

One value, handed unchanged through the seam (:class:`~.source.RangeSource`) to whichever
reader makes the request, so that every reader sends the same Range and If-Range and checks
the reply against the same expectations (:func:`~.validate.validate`).

Secrets are scoped to their origin (RFC 6454 §4: scheme, host, port). The download's headers
were given for one origin (``RangeRequest.origin``; by default the URL's): they are sent there
only. To any other origin — the target of a cross-origin redirect, a CDN — goes only what a
browser would send there of its own: User-Agent, Accept, Accept-Language and the Referer cut
down to its origin (the default ``strict-origin-when-cross-origin`` policy; none from https
to http). Cookie, Authorization, Proxy-Authorization and every other header the user gave
(they may be API keys by another name) stay with their origin, as IDM, curl (since 7.83:
scheme, host and port) and the Fetch standard keep credentials. An http → https redirect on
the same host is another origin too, as for curl.

URL userinfo (``http://user:pass@host/``) is a credential for that origin only: it becomes
``Authorization: Basic`` (RFC 7617; user and password percent-decoded, UTF-8, §2.1) unless the
headers already hold an Authorization, and leaves the URL before anything is sent or
recorded: no request line, log line or message carries it. The splitting is the one of the
shared top (:func:`freight.urls.split_credentials`), where URLs enter Freight: a stored URL
has no userinfo left, its Basic credential is a sealed header of the download.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from freight.engine.http.validate import Validators, range_header
from freight.urls import split_credentials as split_userinfo

#: Headers a browser sends to any origin: they go after a cross-origin redirect too.
PUBLIC_HEADERS = frozenset({"user-agent", "accept", "accept-language"})
#: The engine's own: a user's value (a browser's "gzip, deflate, br") is dropped.
_ENGINE_HEADERS = ("range", "if-range", "accept-encoding")
#: RFC 9110 §14.1.1: a range is of the representation selected, content coding included;
#: only identity bytes are the file's, to be split and spliced (§8.4, decoding.py).
IDENTITY = "identity"
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: RFC 3986 §2.2 reserved, §2.3 unreserved, and "%" (an escape already made): kept as they are.
_UNENCODED = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")


@functools.lru_cache(maxsize=512)
def authority(url: str) -> tuple[str, str, int | None]:
    """``url``'s scheme and host, lower-cased ("" when none), and port (None when none);
    ValueError for a port that is not one. Kept for the URLs seen last: a small download
    asks them of its URL four or five times (its host's slot, its scope, each header's
    destination, its connection), and urllib parses hostname and port anew on each call."""
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


@functools.lru_cache(maxsize=512)
def origin_of(url: str) -> str:
    """``scheme://host:port`` (RFC 6454 §4), lower-cased, the default port made explicit."""
    try:
        scheme, host, port = authority(url)
    except ValueError:  # a port that is no number: the origin of the scheme's default
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), None
    port = port or _DEFAULT_PORTS.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def percent_encoded(url: str) -> str:
    """``url`` with every character that may not appear raw in a URI percent-encoded as UTF-8
    (RFC 3986 §2.1, as httpx and browsers do: a raw "ü" or space in a path or in a redirect's
    Location); escapes already made and reserved characters are kept."""
    if not _UNENCODED.search(url):
        return url
    return _UNENCODED.sub(lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), url)


def _referer_for(value: str, target: str) -> str | None:
    """The Referer a browser would send cross-origin: its origin only, none on a downgrade
    from https to http (strict-origin-when-cross-origin, W3C Referrer Policy §3)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.scheme == "https" and urlsplit(target).scheme != "https":
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"


@dataclass(frozen=True)
class RangeRequest:
    """``[start, end)`` of ``url`` (``end`` None: to the end of the file).

    ``validators`` and ``size`` are what the download already knows: a reply must match them
    (RFC 9110 §13.1.5: a 200 to an If-Range request means the file changed). ``headers`` are
    the download's own (cookies, referrer, ...), without Range and If-Range; ``origin`` is the
    origin they were given for (None: ``url``'s). ``whole``: ask for the whole file without a
    Range (after a ``*`` total, validate.UnknownSize). ``authorization`` is the Basic
    credential of the URL's userinfo once :meth:`scoped` took it out of the URL.
    """

    url: str
    start: int = 0
    end: int | None = None
    validators: Validators | None = None
    size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    origin: str | None = None
    whole: bool = False
    authorization: str | None = field(default=None, repr=False)

    def if_range(self) -> str | None:
        """The If-Range value (a strong ETag, else Last-Modified), when there is one."""
        return self.validators.if_range() if self.validators is not None else None

    def scoped(self) -> RangeRequest:
        """This request with its userinfo moved out of the URL into ``authorization`` and its
        headers' origin fixed: what a source sends, hop after hop."""
        url, authorization = split_userinfo(self.url)
        own = origin_of(url)
        origin = self.origin or own
        if origin != own:
            authorization = None  # the userinfo is for the URL's origin, not the headers'
        authorization = authorization or self.authorization
        if url == self.url and origin == self.origin and authorization == self.authorization:
            return self  # already scoped (a frozen value: the same one will do)
        return replace(self, url=url, origin=origin, authorization=authorization)

    def for_whole(self) -> RangeRequest:
        """The same request for the whole file, without Range or If-Range."""
        return replace(self, start=0, end=None, whole=True)

    def wire_headers(self, url: str | None = None) -> dict[str, str]:
        """The headers as sent to ``url`` (default: this request's): the download's (only to
        their origin, see the module's docstring), then ``Accept-Encoding: identity`` and
        Range (RFC 9110 §14.2) and If-Range. A Range, If-Range or Accept-Encoding among the
        download's own is dropped: they are the engine's to set; two of them would make the
        server's answer ambiguous, and a coded answer cannot be split (§14.1.1)."""
        target = url or self.url
        own = origin_of(target) == (self.origin or origin_of(self.url))
        sent: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            if key in _ENGINE_HEADERS:
                continue
            if own or key in PUBLIC_HEADERS:
                sent[name] = value
            elif key == "referer":
                cut = _referer_for(value, target)
                if cut is not None:
                    sent[name] = cut
        if own and self.authorization and not any(k.lower() == "authorization" for k in sent):
            sent["Authorization"] = self.authorization
        sent["Accept-Encoding"] = IDENTITY
        if not self.whole:
            sent["Range"] = range_header(self.start, self.end)
            if_range = self.if_range()
            if if_range:
                sent["If-Range"] = if_range
        return sent
