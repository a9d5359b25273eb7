"""A :class:`~freight.engine.http.source.RangeSource` that serves bytes from memory, for tests.

:class:`ScriptedSource` plays an HTTP server for one file without a socket: it answers a
range request as RFC 9110 says (206 with Content-Range, 200 when it does not serve ranges or
when If-Range no longer matches, §13.1.5; 416 past the end, §15.5.17), and each
:class:`Rule` scripts a misbehaviour for the requests it matches: a status, a dropped
connection after N bytes, a 200 to a range, a wrong range, a new version of the file, or a
call (to stop the transfer at that very request), a short 206 (a server capping its
bodies), a ``*`` total, 1xx interim heads, a redirect (to another origin too). The head goes
through the very same ``validate.validate`` as the real readers', and redirects through the
same ``follow.fetch`` with each hop's headers scoped to their origin, so a test drives the
real rules of a Transfer. Every request is recorded with the origin it went to and the
headers it carried (``requests``), so that a test can check that no header meant for one
origin ever reached another.

Versions: ``etag`` may be strong (``'"v1"'``), weak (``'W/"v1"'``: never matches If-Range,
RFC 9110 §13.1.5) or None; ``last_modified`` an HTTP-date or None; ``Rule.change`` swaps the
file and its ETag (``change_modified`` its date) before answering.
"""

from __future__ import annotations

import http
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from freight.engine.http.follow import Redirect, Scopes, fetch
from freight.engine.http.head import Head, HeadHeaders
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest, origin_of
from freight.engine.http.source import Lane
from freight.engine.http.validate import validate
from freight.errors import Stopped, TransientError


@dataclass(frozen=True)
class Request:
    """A request as the server saw it (headers include Range and If-Range, when sent).
    ``origin`` is where it went (``scheme://host:port``); ``interim`` the 1xx heads sent
    before its answer; ``status`` that answer's status."""

    url: str
    start: int
    end: int | None
    headers: dict[str, str]
    origin: str = ""
    interim: tuple[int, ...] = ()
    status: int = 0

    @property
    def ranged(self) -> bool:
        return any(k.lower() == "range" for k in self.headers)


def _any(request: Request) -> bool:
    return True


@dataclass
class Rule:
    """How to answer the requests it matches; the first matching rule with uses left wins."""

    match: Callable[[Request], bool] = _any
    times: int | None = 1  # uses left; None: every time
    status: int | None = None  # answer this status with no body (403, 503, ...)
    headers: dict[str, str] = field(default_factory=dict)  # added to the answer
    whole: bool = False  # a 200 with the whole file, as a server that ignores Range
    shift: int = 0  # a 206 for a range that starts this many bytes later than asked
    drop_after: int | None = None  # the connection drops after this many body bytes
    change: tuple[bytes, str | None] | None = None  # (data, etag): the file changes first
    change_modified: str | None = None  # with ``change``: the new Last-Modified
    before: Callable[[], None] | None = None  # called before answering
    cap: int | None = None  # a 206 carries at most this many bytes (a short 206, true total)
    star: bool = False  # a 206 says ``bytes a-b/*``: its total is unknown (RFC 9110 §14.4)
    interim: tuple[int, ...] = ()  # 1xx heads before the answer (100, 103; §15.2): skipped
    redirect: str | None = None  # answer ``redirect_status`` with this Location
    redirect_status: int = 302


class ScriptedSource:
    """One file on a scripted server. ``requests`` records every request in order."""

    def __init__(
        self,
        data: bytes,
        *,
        etag: str | None = '"v1"',
        last_modified: str | None = None,
        ranges: bool = True,
        headers: dict[str, str] | None = None,
        rules: Iterable[Rule] = (),
        max_redirects: int = 10,
    ) -> None:
        self.data = data
        self.etag = etag
        self.last_modified = last_modified
        self.ranges = ranges
        self.headers = dict(headers or {})
        self.rules = list(rules)
        self.requests: list[Request] = []
        self.max_redirects = max_redirects
        self._scopes = Scopes()
        self.sent = 0  # body bytes handed out
        self.aborted = False
        self._lock = threading.Lock()

    # -- RangeSource -----------------------------------------------------------------------

    def lane(self) -> Lane:
        return Lane()

    def open(self, asked: RangeRequest, *, lane: Lane | None = None) -> Reply:
        return fetch(asked, self._hop, max_redirects=self.max_redirects, scopes=self._scopes)

    def _hop(self, scoped: RangeRequest, url: str, headers: dict[str, str]) -> Reply | Redirect:
        start, end = (0, None) if scoped.whole else (scoped.start, scoped.end)
        with self._lock:
            rule = self._rule(Request(url, start, end, dict(headers), origin_of(url)))
            if rule.change is not None:
                self.data, self.etag = rule.change
                self.last_modified = rule.change_modified or self.last_modified
            data, etag, modified = self.data, self.etag, self.last_modified
        if rule.before is not None:
            rule.before()
        if self.aborted:
            raise Stopped("stopped")
        if rule.redirect is not None:
            self._record(url, start, end, headers, rule, rule.redirect_status)
            return Redirect(rule.redirect)
        head, body_start, body_end = self._answer(
            "range" in {k.lower() for k in headers}, headers, start, end, rule, data, etag,
            modified, url,
        )
        self._record(url, start, end, headers, rule, head.status_code)
        reply = validate(
            head, scoped.start, scoped.end, scoped.validators, scoped.size, whole=scoped.whole
        )
        reply.body = self._body(data, body_start, body_end, rule.drop_after)
        return reply

    def _record(
        self, url: str, start: int, end: int | None, headers: dict[str, str], rule: Rule,
        status: int,
    ) -> None:
        with self._lock:
            self.requests.append(Request(
                url, start, end, dict(headers), origin_of(url), rule.interim, status
            ))

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        pass

    # -- the server ------------------------------------------------------------------------

    def _rule(self, request: Request) -> Rule:
        for rule in self.rules:
            if (rule.times is None or rule.times > 0) and rule.match(request):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return Rule()

    def _answer(
        self, ranged: bool, headers: dict[str, str], start: int, end: int | None, rule: Rule,
        data: bytes, etag: str | None, modified: str | None, url: str,
    ) -> tuple[Head, int, int]:
        fields = dict(self.headers)
        if etag:
            fields["ETag"] = etag
        if modified:
            fields["Last-Modified"] = modified
        fields.update(rule.headers)
        size = len(data)
        if_range = headers.get("If-Range")
        # RFC 9110 §13.1.5: strong comparison; a weak tag never matches.
        strong = etag if etag and not etag.startswith("W/") else None
        still = if_range is None or if_range in (strong, modified)
        if rule.status is not None:
            status, first, last = rule.status, 0, 0
            fields["Content-Length"] = "0"
        elif rule.whole or not ranged or not self.ranges or not still:
            status, first, last = 200, 0, size
            fields["Content-Length"] = str(size)
        elif start >= size:
            status, first, last = 416, 0, 0
            fields["Content-Range"] = f"bytes */{size}"
        else:
            status = 206
            first = min(start + rule.shift, size - 1)
            last = size if end is None else min(end, size)
            if rule.cap is not None:
                last = min(last, first + max(1, rule.cap))
            total = "*" if rule.star else str(size)
            fields["Content-Range"] = f"bytes {first}-{last - 1}/{total}"
            fields["Content-Length"] = str(last - first)
        pairs = [(name.encode("latin-1"), value.encode()) for name, value in fields.items()]
        reason = http.HTTPStatus(status).phrase
        return Head(status, reason, HeadHeaders(pairs), url), first, last

    def _body(
        self, data: bytes, first: int, last: int, drop_after: int | None
    ) -> Callable[[int], Iterator[memoryview]]:
        view = memoryview(data)[first:last]
        limit = len(view) if drop_after is None else min(drop_after, len(view))

        def chunks(read_size: int) -> Iterator[memoryview]:
            offset = 0
            while offset < len(view):
                if self.aborted:
                    raise TransientError("the connection was shut down")
                if offset >= limit:
                    raise TransientError(f"the connection dropped after {offset} bytes")
                n = min(read_size, limit - offset)
                with self._lock:
                    self.sent += n
                yield view[offset : offset + n]
                offset += n

        return chunks
