"""A :class:`~freight.engine.http.source.RangeSource` that serves bytes from memory, for tests.

:class:`ScriptedSource` plays an HTTP server for one file without a socket: it answers a
range request as RFC 9110 says (206 with Content-Range, 200 when it does not serve ranges or
when If-Range no longer matches, §13.1.5; 416 past the end, §15.5.17), and each
:class:`Rule` scripts a misbehaviour for the requests it matches: a status, a dropped
connection after N bytes, a 200 to a range, a wrong range, a new version of the file, or a
call (to stop the transfer at that very request). The head goes through the very same
``validate.validate`` as the real readers', so a test drives the real rules of a Transfer.
"""

from __future__ import annotations

import http
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from freight.engine.http.lean import Head, HeadHeaders
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.engine.http.source import Lane
from freight.engine.http.validate import validate
from freight.errors import Stopped, TransientError


@dataclass(frozen=True)
class Request:
    """A request as the server saw it (headers include Range and If-Range)."""

    url: str
    start: int
    end: int | None
    headers: dict[str, str]


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
    before: Callable[[], None] | None = None  # called before answering


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
    ) -> None:
        self.data = data
        self.etag = etag
        self.last_modified = last_modified
        self.ranges = ranges
        self.headers = dict(headers or {})
        self.rules = list(rules)
        self.requests: list[Request] = []
        self.sent = 0  # body bytes handed out
        self.aborted = False
        self._lock = threading.Lock()

    # -- RangeSource -----------------------------------------------------------------------

    def lane(self) -> Lane:
        return Lane()

    def open(self, asked: RangeRequest, *, lane: Lane | None = None) -> Reply:
        request = Request(asked.url, asked.start, asked.end, asked.wire_headers())
        with self._lock:
            self.requests.append(request)
            rule = self._rule(request)
            if rule.change is not None:
                self.data, self.etag = rule.change
            data, etag = self.data, self.etag
        if rule.before is not None:
            rule.before()
        if self.aborted:
            raise Stopped("stopped")
        head, body_start, body_end = self._answer(request, rule, data, etag)
        reply = validate(head, asked.start, asked.end, asked.validators, asked.size)
        reply.body = self._body(data, body_start, body_end, rule.drop_after)
        return reply

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
        self, request: Request, rule: Rule, data: bytes, etag: str | None
    ) -> tuple[Head, int, int]:
        fields = dict(self.headers)
        if etag:
            fields["ETag"] = etag
        if self.last_modified:
            fields["Last-Modified"] = self.last_modified
        fields.update(rule.headers)
        size = len(data)
        if_range = request.headers.get("If-Range")
        still = if_range is None or if_range in (etag, self.last_modified)
        if rule.status is not None:
            status, first, last = rule.status, 0, 0
            fields["Content-Length"] = "0"
        elif rule.whole or not self.ranges or not still:
            status, first, last = 200, 0, size
            fields["Content-Length"] = str(size)
        elif request.start >= size:
            status, first, last = 416, 0, 0
            fields["Content-Range"] = f"bytes */{size}"
        else:
            status = 206
            first = min(request.start + rule.shift, size - 1)
            last = size if request.end is None else min(request.end, size)
            fields["Content-Range"] = f"bytes {first}-{last - 1}/{size}"
            fields["Content-Length"] = str(last - first)
        pairs = [(name.encode("latin-1"), value.encode()) for name, value in fields.items()]
        reason = http.HTTPStatus(status).phrase
        return Head(status, reason, HeadHeaders(pairs), request.url), first, last

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
