"""Redirects followed by Freight itself, hop by hop, with each hop's headers for its origin.

httpx would follow redirects inside ``client.send`` and strip Authorization on the hop only:
every later range request to the final URL would then carry, from the transfer, the Cookie
and Authorization meant for the first host. Here a source follows redirects itself
(:func:`fetch`), for both readers (the lean one takes redirects too), and remembers where each
final URL came from (:class:`Scopes`): a later request for that URL carries the headers of
the origin they were given for only when it *is* that origin (request.RangeRequest.
wire_headers). The rules (RFC 9110 §15.4):
- 301, 302, 303, 307 and 308 with a Location are followed (we only GET, so 303 changes
  nothing); a Location is resolved against the hop's URL (RFC 3986 §5) and percent-encoded;
- only http and https; at most ``max_redirects`` hops; a URL seen twice is a loop;
- userinfo in a Location is dropped, never used: credentials come from the user only;
- errors never quote a URL (it may carry a secret, docs/SECURITY.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urljoin, urlsplit

from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest, percent_encoded, split_userinfo
from freight.engine.http.validate import UnknownSize
from freight.errors import ProtocolViolation

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REMEMBERED = 64  # final URLs a source remembers (one download has one or two)


@dataclass(frozen=True)
class Redirect:
    """A hop's answer that sends us elsewhere: its raw Location value."""

    location: str


#: One hop: send ``request`` to ``url`` with ``headers``; the checked Reply, or a Redirect
#: (the sender has closed the redirect's response).
Send = Callable[[RangeRequest, str, dict[str, str]], "Reply | Redirect"]


def redirect_of(status: int, location: str | None) -> Redirect | None:
    """A Redirect when a response head of ``status`` with ``location`` is one to follow."""
    if status in REDIRECTS and location and location.strip():
        return Redirect(location.strip())
    return None


def next_url(current: str, location: str) -> str:
    """The absolute, percent-encoded target of ``location`` seen at ``current``, without
    userinfo; ProtocolViolation for a scheme other than http(s) or a target without host."""
    try:
        target = percent_encoded(urljoin(current, location))
        parts = urlsplit(target)
        _ = parts.port
    except ValueError:
        raise ProtocolViolation("the server redirected to an invalid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme[:10] or "none"
        raise ProtocolViolation(f"the server redirected to an unsupported scheme ({scheme})")
    if not parts.hostname:
        raise ProtocolViolation("the server redirected to a URL without a host")
    return split_userinfo(target)[0]


class Scopes:
    """What a source learnt: each final URL it handed out → the scoped request it came from
    (its headers' origin and Basic credential). A transfer asks for later ranges of
    ``reply.url``; :meth:`resolve` gives such a request the scope of the original."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, tuple[str | None, str | None]] = {}

    def resolve(self, request: RangeRequest) -> RangeRequest:
        scoped = request.scoped()
        if request.origin is not None:
            return scoped
        with self._lock:
            known = self._by_url.get(scoped.url)
        if known is None:
            return scoped
        origin, authorization = known
        return replace(scoped, origin=origin, authorization=authorization)

    def remember(self, final_url: str, request: RangeRequest) -> None:
        with self._lock:
            if final_url not in self._by_url and len(self._by_url) >= _REMEMBERED:
                self._by_url.pop(next(iter(self._by_url)))
            self._by_url[final_url] = (request.origin, request.authorization)


class Hops:
    """The redirect rules of :func:`fetch` without its I/O, for any reader (the threads' and
    the event loop's): :attr:`scoped`, :attr:`url` and :meth:`headers` are the next hop to
    make; tell it what came back (:meth:`redirected`, :meth:`unknown_size`, :meth:`arrived`).
    """

    def __init__(
        self, request: RangeRequest, *, max_redirects: int, scopes: Scopes | None
    ) -> None:
        # ``scopes`` None: a one-request run that nothing later asks again (engine/quick.py):
        # its request is its own scope, and what it learnt is kept by no one.
        self.scoped = request.scoped() if scopes is None else scopes.resolve(request)
        self.url = self.scoped.url
        self._scopes = scopes
        self._max_redirects = max_redirects
        self._seen = {self.url}
        self._hops = 0

    def headers(self) -> dict[str, str]:
        return self.scoped.wire_headers(self.url)

    def unknown_size(self, exc: UnknownSize) -> None:
        """A ``*`` total to an open-ended range: ask for the whole file, once."""
        if self.scoped.whole:
            raise exc
        self.scoped = self.scoped.for_whole()

    def redirected(self, redirect: Redirect) -> None:
        self._hops += 1
        if self._hops > self._max_redirects:
            raise ProtocolViolation(f"too many redirects (more than {self._max_redirects})")
        self.url = next_url(self.url, redirect.location)
        if self.url in self._seen:
            raise ProtocolViolation("too many redirects: the server redirects in a loop")
        self._seen.add(self.url)

    def arrived(self, reply: Reply) -> Reply:
        if self._scopes is not None:
            self._scopes.remember(reply.url, self.scoped)
        return reply


def fetch(request: RangeRequest, send: Send, *, max_redirects: int, scopes: Scopes) -> Reply:
    """Make ``request`` (scoped by ``scopes``), following redirects hop by hop through
    ``send``. A ``*`` total to an open-ended range (validate.UnknownSize) is answered by
    asking the same URL for the whole file without Range, once (RFC 9110 §14.4)."""
    hops = Hops(request, max_redirects=max_redirects, scopes=scopes)
    while True:
        try:
            answer = send(hops.scoped, hops.url, hops.headers())
        except UnknownSize as exc:
            hops.unknown_size(exc)
            continue
        if isinstance(answer, Reply):
            return hops.arrived(answer)
        hops.redirected(answer)
