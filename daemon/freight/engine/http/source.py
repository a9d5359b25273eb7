"""The one seam through which the engine opens a byte range: :class:`RangeSource`.

A transfer asks a source for ``[start, end)`` of a URL and gets a checked :class:`Reply`
(validate.validate: the same rules whoever made the request). :class:`HttpSource` is the
real one; ``scripted.ScriptedSource`` serves bytes from memory for tests.

:class:`HttpSource` puts the lean reader (lean.py) first and httpx behind it:
- redirects are followed here, hop by hop (follow.fetch), each hop's headers scoped to their
  origin (request.py): Cookie, Authorization, URL userinfo and the user's headers never reach
  another origin, on the hop or on any later range request to the final URL;
- a hop goes through the lean reader when it has a :class:`Lane` (one worker's kept-alive
  connection), the setting ``lean_reader`` is on and no proxy applies to the URL; a chunked,
  unframed or encoded body falls back to httpx (lean.UseHttpx);
- the httpx client, with its TLS context, is made on first use only (tens of milliseconds);
- every request awaiting its head and every open reply is tracked, so that :meth:`abort`
  (a stop) wakes every blocked read at once; after it, ``open`` raises Stopped;
- a response head must arrive whole within twice the stall timeout, however slowly it
  trickles (httpx's read timeout applies to each read only).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from freight.engine.http import lean
from freight.engine.http.follow import Redirect, Scopes, fetch
from freight.engine.http.httpx_reader import (
    USER_AGENT,
    Inflight,
    make_client,
    open_range,
    ssl_context,
)
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.errors import Stopped, TransientError

if TYPE_CHECKING:
    import ssl

    import httpx

    from freight.config import EngineSettings


class Lane:
    """One worker's way to the server: its kept-alive lean connection, if any. Owned by one
    thread at a time (the probe's lane is handed to the first worker with its reply)."""

    __slots__ = ("conn", "origin")

    def __init__(self) -> None:
        self.conn: lean.Connection | None = None
        self.origin: tuple[str, str, int | None] | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class RangeSource(Protocol):
    """Where the bytes of a download come from."""

    def lane(self) -> Lane:
        """A new lane for one worker; pass it to every ``open`` of that worker."""
        ...

    def open(self, request: RangeRequest, *, lane: Lane | None = None) -> Reply:
        """Make ``request`` and return the checked reply, or raise FreightError
        (validate.validate's, the transport's; Stopped once aborted)."""
        ...

    def abort(self) -> None:
        """From any thread: wake every blocked request and read; later opens raise Stopped."""
        ...

    def close(self) -> None:
        """Release what the source holds (its HTTP client)."""
        ...


class HttpSource:
    """The lean reader first, httpx behind it (see the module's docstring)."""

    def __init__(self, settings: EngineSettings, *, insecure: bool = False) -> None:
        self.settings = settings
        self._insecure = insecure
        self._lock = threading.Lock()  # the tracked requests and replies
        self._client_lock = threading.Lock()
        self._ssl_lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self._client: httpx.Client | None = None
        self._aborted = False
        self._replies: set[Reply] = set()
        self._inflight: set[Inflight] = set()
        self._conns: set[lean.Connection] = set()  # lean connections still awaiting a head
        # A response head must arrive whole within this time, however slowly it trickles.
        self._head_timeout = 2 * settings.stall_timeout
        self._scopes = Scopes()  # final URLs → the origin their headers were given for

    def lane(self) -> Lane:
        return Lane()

    def open(self, request: RangeRequest, *, lane: Lane | None = None) -> Reply:
        def send(scoped: RangeRequest, url: str, headers: dict[str, str]) -> Reply | Redirect:
            answer: Reply | Redirect | None = None
            conn = self._connection(lane, url) if lane is not None else None
            if conn is not None:
                answer = self._open_lean(conn, scoped, url, headers)
            if answer is None:
                answer = self._open_httpx(scoped, url, headers)
            return answer

        reply = fetch(request, send, max_redirects=self.settings.max_redirects,
                      scopes=self._scopes)
        with self._lock:
            self._replies.add(reply)
            aborted = self._aborted
        reply.on_close = self._forget
        if aborted:
            reply.abort()
        return reply

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            replies = list(self._replies)
            inflight = list(self._inflight)
            conns = list(self._conns)
        for reply in replies:
            reply.abort()
        for request in inflight:
            request.abort()
        for conn in conns:
            conn.abort()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _forget(self, reply: Reply) -> None:
        with self._lock:
            self._replies.discard(reply)

    def _connection(self, lane: Lane, url: str) -> lean.Connection | None:
        """The lane's lean connection for ``url``'s origin: made (or remade, after a redirect
        to another origin) when the lean reader may serve that URL, else None."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port)
        if origin == lane.origin:
            return lane.conn
        lane.close()
        lane.origin, lane.conn = origin, None
        if self.settings.lean_reader and lean.usable_for(url):
            lane.conn = lean.Connection(
                url,
                connect_timeout=self.settings.connect_timeout,
                stall_timeout=self.settings.stall_timeout,
                ssl_context=self._ssl_context() if url.startswith("https:") else None,
                read_size=self.settings.read_size,
                user_agent=USER_AGENT,
            )
        return lane.conn

    def _open_lean(
        self, conn: lean.Connection, request: RangeRequest, url: str, headers: dict[str, str]
    ) -> Reply | Redirect | None:
        """One hop through the lean reader; None when httpx must make it."""
        with self._lock:
            self._conns.add(conn)
            aborted = self._aborted
        try:
            if aborted:
                raise Stopped("stopped")
            return lean.open_range_lean(conn, request, url, headers)
        except lean.UseHttpx:
            conn.close()
            return None
        except TransientError:
            conn.close()
            if self._aborted:
                raise Stopped("stopped") from None
            raise
        except BaseException:
            conn.close()
            raise
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _open_httpx(
        self, request: RangeRequest, url: str, headers: dict[str, str]
    ) -> Reply | Redirect:
        """One hop through httpx, abortable and bounded by the head deadline."""
        client = self._http()
        inflight = Inflight()
        with self._lock:
            self._inflight.add(inflight)
            aborted = self._aborted
        try:
            if aborted:
                raise Stopped("stopped")
            return open_range(
                client, request, url, headers, inflight=inflight,
                head_timeout=self._head_timeout,
            )
        except TransientError:
            if self._aborted:
                raise Stopped("stopped") from None
            raise
        finally:
            with self._lock:
                self._inflight.discard(inflight)

    def _http(self) -> httpx.Client:
        """The httpx client, made on first use: many downloads never need it (the lean
        reader probes plain URLs), and making one costs tens of milliseconds."""
        with self._client_lock:
            if self._client is None:
                self._client = make_client(
                    connect_timeout=self.settings.connect_timeout,
                    stall_timeout=self.settings.stall_timeout,
                    max_redirects=self.settings.max_redirects,
                    connections=self.settings.max_connections,
                    ssl=self._ssl_context(),
                )
            return self._client

    def _ssl_context(self) -> ssl.SSLContext:
        with self._ssl_lock:
            if self._ssl is None:
                self._ssl = ssl_context(self._insecure)
            return self._ssl
