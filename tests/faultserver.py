"""A fault-injecting HTTP/1.1 origin server for Freight's tests.

Built on asyncio streams, not on ``http.server`` or a framework, so that every byte on the wire is
ours: a fault can be injected after exactly N body bytes, a body can outrun its Content-Length,
a socket can stall while staying open. The server runs its own event loop in its own thread and
is driven from ordinary synchronous pytest tests. It binds 127.0.0.1, port 0, and nothing else.

Quick use::

    from faultserver import FaultServer, make_data

    with FaultServer() as srv:                       # start() ... stop()
        data = make_data(1 << 20)                    # deterministic bytes
        url = srv.add("/file.bin", data=data, etag="v1", drop_after=1000)
        ...                                          # fetch url with the engine under test
        st = srv.stats("/file.bin")
        assert st.bytes_sent < 2 * len(data)

``tests/conftest.py`` offers the fixtures ``fault_server`` and ``other_fault_server`` (a second
server on another port, for cross-host redirects) and ``freight_home``.

API
===

``FaultServer()``
    ``start()`` binds and starts the loop thread (returns self); ``stop()`` closes every
    connection (stalled ones too), stops the loop and joins the thread; idempotent. It is a
    context manager. ``port``, ``base_url`` (``http://127.0.0.1:PORT``), ``alias_base_url``
    (``http://localhost:PORT``).
``add(path, data=b"", **behaviour) -> str``
    Serve ``data`` at ``path`` (which may carry a query, e.g. ``/f?sig=1``; a request target is
    matched exactly first, then by its path without the query). Returns the absolute URL.
    Adding an existing path replaces it (and resets its stats).
``url(path) -> str`` / ``host_alias_url(path) -> str``
    The absolute URL on ``127.0.0.1`` / on ``localhost`` (the same server seen as another host).
``stats(path) -> Stats``
    A snapshot (a copy) of the counters of a path (also of an unknown path that was asked
    for; ``KeyError`` for a path neither added nor asked for). Fields: ``requests``,
    ``bytes_sent`` (body bytes), ``ranges`` (per request: ``None``, ``(a, b)``, ``(a, None)``
    for ``a-``, ``(None, n)`` for ``-n``, or the raw header when it is not one valid range),
    ``statuses`` (in sending order), ``methods``, ``current`` and ``max_concurrent`` (requests
    of this path being answered now / at most at once), ``connections`` (distinct connections),
    ``log`` (a :class:`RequestRecord` per request: method, target, lower-cased headers, range,
    status, connection number) and ``headers`` (the request headers, in order).
``reset_stats(path)``
    Zero the counters (the behaviour state, e.g. how much of a ``status_script`` was used, stays).
``set_data(path, data, etag=None, last_modified=None)``
    Change the file. The validators change too: the given ones, else a new ETag derived from the
    data (when the path had an ETag) and a Last-Modified one minute later (when it had one).
``refresh(path, new_path=None, expires_at=None, **behaviour) -> str``
    A "refreshed signed URL": the same content object (data and validators; ``set_data`` on
    either changes both) under a fresh path (default ``<path>?sig=refreshedN``), with the
    behaviour of ``path`` except ``expires_at``; ``behaviour`` overrides single options.
``wait_idle(path, timeout=5) -> Stats``
    Wait until no response of ``path`` is in flight (``current == 0``), then return its stats.
``unstall(path)``
    End every stall on ``path`` now (the stalled responses continue with the rest of the body).
``requests_total`` / ``connections_total``
    Every request / connection the server has seen.
``make_data(size, seed=0) -> bytes``
    Deterministic pseudo-random test data (64 MiB in well under a second).
``parse_range(value)`` / ``resolve_range(spec, total)``
    The pure Range parsing and selection the server uses (exported for tests of tests).

Behaviours (keyword arguments of ``add``; all combinable and deterministic)
---------------------------------------------------------------------------
``etag="v1"``
    Strong ETag ``"v1"`` (quotes added unless given); ``weak_etag=True`` makes it ``W/"v1"``;
    ``etag=True`` derives one from the data. ``last_modified=`` an HTTP-date string, a unix time
    or an aware datetime. Default: no validators.
Ranges (RFC 9110 §14)
    ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` on GET gives 206 with
    ``Content-Range: bytes a-b/total``; an unsatisfiable one gives 416 with
    ``Content-Range: bytes */total`` (so ``bytes=0-`` on an empty file is 416 ``*/0``). A
    Range with several ranges, another unit or bad syntax is ignored (200; the server MAY ignore
    Range, §14.2), and so is a Range on HEAD (range handling is defined for GET only, §14.2).
    ``If-Range`` (§13.1.5): an entity-tag must equal the current *strong* ETag (strong
    comparison; a weak one never matches), a date must equal Last-Modified exactly; otherwise
    the answer is 200 with the whole body.
``ignore_range=True``
    Always 200 with the whole body, no ``Accept-Ranges``.
``no_length=True`` / ``chunked=True``
    No Content-Length and the body ends with the connection close / ``Transfer-Encoding:
    chunked``.
``head="405"``
    Refuse HEAD with that status (any status; default: HEAD answers like GET without a body).
``drop_after=N`` or ``drop_after={"times": k, "bytes": N}``
    Close the connection after N body bytes of each GET response (of the first k only); only
    when N is below that response's body length.
``stall_after=N`` (same dict form), ``stall_seconds=3600``
    Send N body bytes, then nothing with the socket open for ``stall_seconds`` (or until
    ``unstall``/``stop``), then the rest of the body.
``status_script=[503, 503]``, ``retry_after=1``
    The first requests get these statuses (with ``Retry-After`` when given), later ones are
    served normally. An entry ``None`` means "serve normally". A short text body is sent.
``max_concurrent=N``
    A request that arrives while N responses of this path are in flight gets 429 with
    ``Retry-After`` (``retry_after`` or 1).
``change_after=k``, ``changed_data=b"..."`` (``changed_etag=``, ``changed_last_modified=``)
    Requests after the k-th see the new content with new validators (as ``set_data``).
``redirect_to=url``, ``redirect_status=302``
    Redirect (301/302/303/307/308) with ``Location: url`` as given. Chains and loops are made by
    adding several paths.
``content_disposition="attachment; filename=..."``, ``content_type=``, ``headers={...}``
    Raw header values. ``headers`` is applied last: it replaces a default header of the same
    name, and a value ``None`` removes it (e.g. ``{"Accept-Ranges": None}``).
``rate=bytes_per_second``, ``latency=seconds``
    Throttle each response's body: writes of at most 16 KiB, each sent only once the time
    allows it, so that by time t after the headers at most ``rate * t`` body bytes have gone
    out (one connection carries one response at a time, so this is a per-connection rate) /
    wait before the first byte of every response. ``latency_after=k``: only the requests
    after the k-th wait (a probe answered at once, then slow heads).
``require_cookie="name=value"``, ``require_header=("Authorization", "Bearer x")``
    Otherwise 403. ``require_header`` may also be a list of such pairs.
``expires_at=unix_time``
    From that time on, every request gets 403 (a signed URL that expired).
``extra_bytes=N``
    Send N bytes (``b"!"``) after the declared body, then close (a broken server).
``max_body=N``
    A 206 carries at most N body bytes, from the start asked, with the true total (a server
    that caps its bodies: ``bytes=0-`` of 8 MiB gets ``bytes 0-(N-1)/8388608``).
``star_total=True``
    A 206 says ``Content-Range: bytes a-b/*`` (the total unknown, RFC 9110 §14.4).
``interim=[103]``
    Interim heads sent before the final head of a file's answer (RFC 9110 §15.2: 100
    Continue, 103 Early Hints with a ``Link``), in order.
``gzip=True``
    ``Content-Encoding: gzip`` (and ``Vary: Accept-Encoding``) when the request's
    ``Accept-Encoding`` accepts gzip; identity otherwise. ``gzip="always"`` ignores the request.
    The gzip representation has its own ETag (``"<etag>-gzip"``), as RFC 9110 §8.8.3 asks.

Without a behaviour that closes it, a connection is kept alive for further requests (HTTP/1.1;
HTTP/1.0 and ``Connection: close`` are honoured). Unknown paths get 404; methods other than GET
and HEAD get 405. Bodies go out as memoryview slices in writes of 256 KiB with ``drain()``.
``bytes_sent`` counts body bytes handed to the socket (framing of chunked bodies excluded).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as _dt
import email.utils
import gzip as _gzip
import hashlib
import http
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FaultServer", "RequestRecord", "Stats", "make_data", "parse_range", "resolve_range"]

WRITE_SIZE = 256 * 1024
#: A throttled response writes at most this much at a time, so the rate is smooth.
RATE_WRITE_SIZE = 16 * 1024
MAX_HEAD = 64 * 1024

Range = tuple[int | None, int | None]


def make_data(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic pseudo-random bytes (fast even for 64 MiB)."""
    return random.Random(seed).randbytes(size)


@dataclass
class RequestRecord:
    """One request as the server saw it; ``headers`` has lower-case names."""

    method: str
    target: str
    headers: dict[str, str]
    range: Range | str | None
    status: int = 0
    connection: int = 0


@dataclass
class Stats:
    """Counters of one path (a snapshot copy; it does not change after ``stats()`` returns).

    ``ranges`` has one entry per request: ``None`` without a Range header, ``(a, b)`` for
    ``bytes=a-b``, ``(a, None)`` for ``bytes=a-``, ``(None, n)`` for the suffix ``bytes=-n``,
    and the raw header value for anything else. ``statuses`` are the statuses sent, in order.
    ``current`` is how many requests are being answered now, ``max_concurrent`` its peak.
    ``connections`` counts distinct connections that asked for this path.
    """

    requests: int = 0
    bytes_sent: int = 0
    ranges: list[Range | str | None] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    max_concurrent: int = 0
    current: int = 0
    connections: int = 0
    log: list[RequestRecord] = field(default_factory=list)
    _conn_ids: set[int] = field(default_factory=set, repr=False)

    @property
    def headers(self) -> list[dict[str, str]]:
        """The request headers of every request, in order."""
        return [r.headers for r in self.log]


# ---------------------------------------------------------------------------------------------
# Content and behaviour


def _quote_etag(etag: str, weak: bool) -> str:
    if etag.startswith('W/"') or (etag.startswith('"') and etag.endswith('"') and len(etag) > 1):
        return etag
    return f'W/"{etag}"' if weak else f'"{etag}"'


def _auto_etag(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def _http_date(value: Any) -> str:
    if isinstance(value, str):
        if email.utils.parsedate_to_datetime(value) is None:  # raises on nonsense too
            raise ValueError(f"not an HTTP-date: {value!r}")
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise ValueError("last_modified datetime must be timezone-aware")
        return email.utils.format_datetime(value.astimezone(_dt.UTC), usegmt=True)
    if isinstance(value, (int, float)):
        return email.utils.formatdate(float(value), usegmt=True)
    raise TypeError(f"last_modified must be an HTTP-date, a unix time or a datetime: {value!r}")


def _parse_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class _Content:
    """The bytes and validators of a file; shared by a path and its refreshed copies."""

    def __init__(self, data: bytes, etag: str | None, last_modified: str | None) -> None:
        self.data = bytes(data)
        self.etag = etag
        self.last_modified = last_modified
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            # mtime=0 keeps the gzip bytes (and so their ranges) deterministic.
            self._gzipped = _gzip.compress(self.data, compresslevel=6, mtime=0)
        return self._gzipped

    def replace(self, data: bytes, etag: str | None, last_modified: Any) -> None:
        if etag is not None:
            weak = bool(self.etag and self.etag.startswith("W/"))
            self.etag = _quote_etag(etag, weak)
        elif self.etag is not None:
            weak = self.etag.startswith("W/")
            new = _auto_etag(data)
            if _quote_etag(new, weak) == self.etag:
                new += "-2"
            self.etag = _quote_etag(new, weak)
        if last_modified is not None:
            self.last_modified = _http_date(last_modified)
        elif self.last_modified is not None:
            old = _parse_date(self.last_modified) or time.time()
            self.last_modified = _http_date(old + 60)
        self.data = bytes(data)
        self._gzipped = None


_KNOWN = {
    "etag", "weak_etag", "last_modified", "ignore_range", "no_length", "chunked", "head",
    "drop_after", "stall_after", "stall_seconds", "status_script", "retry_after",
    "max_concurrent", "change_after", "changed_data", "changed_etag", "changed_last_modified",
    "redirect_to", "redirect_status", "content_disposition", "headers", "content_type", "rate",
    "latency", "latency_after", "require_cookie", "require_header", "expires_at", "extra_bytes",
    "gzip", "max_body", "star_total", "interim",
}


def _times_bytes(name: str, value: Any) -> tuple[int | None, int] | None:
    """``N`` → (None, N): every response; ``{"times": k, "bytes": N}`` → (k, N)."""
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) - {"times", "bytes"} or "bytes" not in value:
            raise ValueError(f"{name} takes N or {{'times': k, 'bytes': N}}, not {value!r}")
        times = value.get("times")
        nbytes = value["bytes"]
        if times is not None and (not isinstance(times, int) or times < 0):
            raise ValueError(f"{name}: times must be an int >= 0")
    else:
        times, nbytes = None, value
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        raise ValueError(f"{name}: bytes must be an int >= 0, not {nbytes!r}")
    return times, nbytes


class _Resource:
    """One path: its behaviour, its state and its stats (guarded by the server's lock)."""

    def __init__(self, path: str, content: _Content, opts: dict[str, Any]) -> None:
        self.path = path
        self.content = content
        self.opts = opts
        self.drop = _times_bytes("drop_after", opts.get("drop_after"))
        self.stall = _times_bytes("stall_after", opts.get("stall_after"))
        self.script = list(opts.get("status_script") or [])
        self.script_pos = 0
        self.drops_done = 0
        self.stalls_done = 0
        self.count = 0  # requests seen, for change_after
        self.arrived = 0  # requests arrived (before any latency), for latency_after
        self.changed = False
        self.active = 0  # admitted responses in flight, for max_concurrent
        self.unstall_event: asyncio.Event | None = None
        self.stats = Stats()

    @classmethod
    def build(cls, path: str, data: bytes, opts: dict[str, Any]) -> _Resource:
        unknown = set(opts) - _KNOWN
        if unknown:
            raise TypeError(f"unknown behaviour(s): {', '.join(sorted(unknown))}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes")
        etag = opts.get("etag")
        if etag is True:
            etag = _auto_etag(bytes(data))
        if etag is not None:
            if not isinstance(etag, str) or not etag:
                raise ValueError("etag must be a non-empty string or True")
            etag = _quote_etag(etag, bool(opts.get("weak_etag")))
        lm = opts.get("last_modified")
        lm = _http_date(lm) if lm is not None else None
        if "change_after" in opts and "changed_data" not in opts:
            raise ValueError("change_after needs changed_data")
        rs = opts.get("redirect_status", 302)
        if rs not in (301, 302, 303, 307, 308):
            raise ValueError(f"redirect_status must be 301/302/303/307/308, not {rs!r}")
        for name in ("max_concurrent", "change_after", "extra_bytes", "latency_after"):
            v = opts.get(name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be an int >= 0")
        rate = opts.get("rate")
        if rate is not None and not rate > 0:
            raise ValueError("rate must be > 0 bytes per second")
        if opts.get("gzip") not in (None, False, True, "always"):
            raise ValueError("gzip must be True, False or 'always'")
        return cls(path, _Content(bytes(data), etag, lm), dict(opts))


# ---------------------------------------------------------------------------------------------
# Pure helpers: Range parsing and selection (RFC 9110 §14)

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(value: str) -> Range | None:
    """One byte range of a Range header, or None when the header is not a single valid one.

    RFC 9110 §14.1.1: ``a-b`` with b >= a, ``a-``, or the suffix ``-n``. Several ranges are
    not served (the server MAY ignore Range, §14.2), so they yield None too.
    """
    m = _RANGE_RE.match(value)
    if not m:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        return (None, int(last))
    if last == "":
        return (int(first), None)
    a, b = int(first), int(last)
    if b < a:  # an invalid range-spec (§14.1.1): the whole header is ignored
        return None
    return (a, b)


def resolve_range(spec: Range, total: int) -> tuple[int, int] | None:
    """Inclusive (start, end) within ``total`` bytes, or None when unsatisfiable (→ 416)."""
    first, last = spec
    if first is None:
        n = last or 0
        if n == 0 or total == 0:  # a zero suffix selects nothing; an empty file has no bytes
            return None
        return (max(0, total - n), total - 1)
    if first >= total:
        return None
    end = total - 1 if last is None else min(last, total - 1)
    return (first, end)


def _accepts_gzip(value: str | None) -> bool:
    if not value:
        return False
    for item in value.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        return q > 0
    return False


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _Close(Exception):
    """Raised inside a response to end the connection without further ado."""


# ---------------------------------------------------------------------------------------------
# The server


class FaultServer:
    """See the module docstring."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        if host != "127.0.0.1":
            raise ValueError("the fault server listens on 127.0.0.1 only")
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._resources: dict[str, _Resource] = {}
        self._stats_other: dict[str, Stats] = {}  # requests to unknown paths
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._refreshes = 0
        self._conn_seq = 0
        self.requests_total = 0
        self.connections_total = 0
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FaultServer:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._on_connection, self.host, 0, limit=MAX_HEAD)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # pragma: no cover - reported to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="faultserver", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError("fault server failed to start") from failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        loop = self._loop
        assert loop is not None
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        # Stage 1: stop accepting. Stage 2: cancel every connection (stalls included) and
        # close its socket. Stage 3: wait for the handlers to finish their cleanup.
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        self._require_started()
        return f"http://127.0.0.1:{self.port}"

    @property
    def alias_base_url(self) -> str:
        self._require_started()
        return f"http://localhost:{self.port}"

    def _require_started(self) -> None:
        if not self.port:
            raise RuntimeError("FaultServer.start() first: the port is chosen when it binds")

    @staticmethod
    def _check_path(path: str) -> str:
        if not isinstance(path, str) or not path.startswith("/") or any(
            c in path for c in " \r\n\t#"
        ):
            raise ValueError(f"a path starts with '/' and has no spaces or '#': {path!r}")
        return path

    def url(self, path: str) -> str:
        return self.base_url + self._check_path(path)

    def host_alias_url(self, path: str) -> str:
        return self.alias_base_url + self._check_path(path)

    def add(self, path: str, data: bytes = b"", **behaviour: Any) -> str:
        self._check_path(path)
        res = _Resource.build(path, data, behaviour)
        with self._lock:
            self._resources[path] = res
        return self.url(path)

    def _get(self, path: str) -> _Resource:
        res = self._resources.get(path)
        if res is None:
            raise KeyError(f"no such path on the fault server: {path!r}")
        return res

    def stats(self, path: str) -> Stats:
        with self._lock:
            res = self._resources.get(path)
            st = res.stats if res is not None else self._stats_other.get(path)
            if st is None:
                raise KeyError(f"no such path on the fault server: {path!r}")
            return copy.deepcopy(st)

    def reset_stats(self, path: str) -> None:
        with self._lock:
            res = self._get(path)
            current, res.stats = res.stats.current, Stats()
            res.stats.current = current

    def set_data(
        self,
        path: str,
        data: bytes,
        etag: str | None = None,
        last_modified: Any = None,
    ) -> None:
        with self._lock:
            self._get(path).content.replace(data, etag, last_modified)

    def refresh(
        self,
        path: str,
        new_path: str | None = None,
        expires_at: float | None = None,
        **behaviour: Any,
    ) -> str:
        with self._lock:
            old = self._get(path)
            self._refreshes += 1
            if new_path is None:
                new_path = f"{urlsplit(path).path}?sig=refreshed{self._refreshes}"
            self._check_path(new_path)
            opts = {k: v for k, v in old.opts.items() if k != "expires_at"}
            opts.update(behaviour)
            if expires_at is not None:
                opts["expires_at"] = expires_at
            res = _Resource.build(new_path, old.content.data, opts)
            res.content = old.content  # shared: same bytes, same validators
            self._resources[new_path] = res
        return self.url(new_path)

    def wait_idle(self, path: str, timeout: float = 5) -> Stats:
        """Wait until no response of ``path`` is in flight; return its stats.

        A client can hold a whole response a moment before the server's handler has finished
        (and lowered ``current``): call this before asserting on ``current``.
        """
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(path)
            if st.current == 0:
                return st
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{path!r} still has {st.current} response(s) in flight")
            time.sleep(0.005)

    def unstall(self, path: str) -> None:
        with self._lock:
            ev = self._get(path).unstall_event
        if ev is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(ev.set)

    # -- connection handling (event loop thread) ------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        with self._lock:
            self._conn_seq += 1
            conn_id = self._conn_seq
            self.connections_total += 1
        try:
            while True:
                req = await self._read_request(reader, writer)
                if req is None:
                    break
                keep = await self._respond(req, writer, conn_id)
                if not keep:
                    break
        except (_Close, ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, str, str, dict[str, str]] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed between requests
        except asyncio.LimitOverrunError:
            await self._send_simple(writer, 431, close=True)
            raise _Close() from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._send_simple(writer, 400, close=True)
            raise _Close()
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                await self._send_simple(writer, 400, close=True)
                raise _Close()
            key = name.lower()
            value = value.strip()
            if key in headers:
                joiner = "; " if key == "cookie" else ", "
                headers[key] = headers[key] + joiner + value
            else:
                headers[key] = value
        if "transfer-encoding" in headers:
            await self._send_simple(writer, 501, close=True)
            raise _Close()
        length = headers.get("content-length")
        if length:
            if not length.isdigit():
                await self._send_simple(writer, 400, close=True)
                raise _Close()
            await reader.readexactly(int(length))  # a request body is read and ignored
        return method, target, version, headers

    async def _send_simple(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        *,
        close: bool,
        extra: Iterable[tuple[str, str]] = (),
        head_only: bool = False,
    ) -> None:
        body = f"{status} {_reason(status)}\n".encode()
        hdrs = [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Server", "faultserver"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *extra,
        ]
        if close:
            hdrs.append(("Connection", "close"))
        writer.write(self._head(status, hdrs))
        if not head_only:
            writer.write(body)
        await writer.drain()

    @staticmethod
    def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        out = [f"HTTP/1.1 {status} {_reason(status)}\r\n"]
        out += [f"{k}: {v}\r\n" for k, v in headers]
        out.append("\r\n")
        return "".join(out).encode("latin-1")

    def _lookup(self, target: str) -> tuple[str, _Resource | None]:
        if target.startswith(("http://", "https://")):
            s = urlsplit(target)
            target = s.path + (f"?{s.query}" if s.query else "")
        res = self._resources.get(target)
        if res is None:
            path = target.split("?", 1)[0]
            res = self._resources.get(path)
            if res is not None:
                return path, res
        return target, res

    async def _respond(
        self, req: tuple[str, str, str, dict[str, str]], writer: asyncio.StreamWriter, conn: int
    ) -> bool:
        """Answer one request; return whether the connection may serve another."""
        method, target, version, headers = req
        conn_hdr = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            client_close = "keep-alive" not in conn_hdr
        else:
            client_close = "close" in conn_hdr
        raw_range = headers.get("range")
        spec: Range | str | None = None
        if raw_range is not None:
            spec = parse_range(raw_range) or raw_range
        record = RequestRecord(method, target, headers, spec, connection=conn)

        with self._lock:
            self.requests_total += 1
            key, res = self._lookup(target)
            st = res.stats if res is not None else self._stats_other.setdefault(key, Stats())
            st.requests += 1
            st.methods.append(method)
            st.ranges.append(spec)
            st.log.append(record)
            if conn not in st._conn_ids:
                st._conn_ids.add(conn)
                st.connections += 1
            st.current += 1
            st.max_concurrent = max(st.max_concurrent, st.current)
            arrived = 0
            if res is not None:
                res.arrived += 1
                arrived = res.arrived

        def sent(status: int) -> None:
            with self._lock:
                record.status = status
                st.statuses.append(status)

        admitted = False
        try:
            if res is None:
                sent(404)
                await self._send_simple(writer, 404, close=client_close)
                return not client_close
            o = res.opts
            latency = o.get("latency")
            if latency and arrived > (o.get("latency_after") or 0):
                await asyncio.sleep(latency)

            # Decide the status under the lock: the behaviour state is shared by connections.
            with self._lock:
                res.count += 1
                after = o.get("change_after")
                if after is not None and not res.changed and res.count > after:
                    res.changed = True
                    res.content.replace(
                        o["changed_data"], o.get("changed_etag"), o.get("changed_last_modified")
                    )
                early: tuple[int, list[tuple[str, str]]] | None = None
                retry = o.get("retry_after")
                retry_hdr = [("Retry-After", str(retry))] if retry is not None else []
                expired = o.get("expires_at") is not None and time.time() >= o["expires_at"]
                if expired or not self._authorised(o, headers):
                    early = (403, [])
                elif res.script_pos < len(res.script):
                    scripted = res.script[res.script_pos]
                    res.script_pos += 1
                    if scripted is not None:
                        early = (int(scripted), retry_hdr)
                cap = o.get("max_concurrent")
                if early is None and cap is not None and res.active >= cap:
                    early = (429, [("Retry-After", str(retry if retry is not None else 1))])
                if early is None and o.get("redirect_to") is not None:
                    early = (o.get("redirect_status", 302), [("Location", o["redirect_to"])])
                if early is None:
                    if method == "HEAD" and o.get("head") is not None:
                        early = (int(o["head"]), [("Allow", "GET")])
                    elif method not in ("GET", "HEAD"):
                        early = (405, [("Allow", "GET, HEAD")])
                if early is None:
                    res.active += 1
                    admitted = True
                    content = res.content
                    data, etag, lm = content.data, content.etag, content.last_modified
                    use_gzip = o.get("gzip") == "always" or (
                        o.get("gzip") is True and _accepts_gzip(headers.get("accept-encoding"))
                    )
                    if use_gzip:
                        data = content.gzipped()
                        if etag is not None:
                            etag = etag[:-1] + '-gzip"'

            if early is not None:
                status, extra = early
                sent(status)
                await self._send_simple(
                    writer, status, close=client_close, extra=extra, head_only=method == "HEAD"
                )
                return not client_close
            return await self._serve(
                res, method, version, headers, writer, data, etag, lm, use_gzip, client_close, sent
            )
        finally:
            with self._lock:
                st.current -= 1
                if admitted:
                    res.active -= 1  # type: ignore[union-attr]

    @staticmethod
    def _authorised(o: dict[str, Any], headers: dict[str, str]) -> bool:
        cookie = o.get("require_cookie")
        if cookie is not None:
            have = [c.strip() for c in headers.get("cookie", "").split(";")]
            if cookie.strip() not in have:
                return False
        req = o.get("require_header")
        if req is not None:
            pairs = [req] if isinstance(req, tuple) else list(req)
            for name, value in pairs:
                if headers.get(name.lower()) != value:
                    return False
        return True

    @staticmethod
    def _if_range_matches(value: str, etag: str | None, lm: str | None) -> bool:
        """RFC 9110 §13.1.5: strong comparison for an entity-tag, exact match for a date."""
        value = value.strip()
        if value.startswith(('"', "W/")):
            return etag is not None and not etag.startswith("W/") and value == etag
        if lm is None:
            return False
        asked, have = _parse_date(value), _parse_date(lm)
        return asked is not None and asked == have

    async def _serve(
        self,
        res: _Resource,
        method: str,
        version: str,
        headers: dict[str, str],
        writer: asyncio.StreamWriter,
        data: bytes,
        etag: str | None,
        lm: str | None,
        use_gzip: bool,
        client_close: bool,
        sent: Any,
    ) -> bool:
        o = res.opts
        total = len(data)
        status = 200
        start, end = 0, total - 1
        ignore = bool(o.get("ignore_range"))
        raw_range = headers.get("range")
        if method == "GET" and raw_range is not None and not ignore:
            spec = parse_range(raw_range)
            if_range = headers.get("if-range")
            if spec is not None and (
                if_range is None or self._if_range_matches(if_range, etag, lm)
            ):
                span = resolve_range(spec, total)
                if span is None:
                    sent(416)
                    extra = [("Content-Range", f"bytes */{total}")]
                    if etag:
                        extra.append(("ETag", etag))
                    await self._send_simple(writer, 416, close=client_close, extra=extra)
                    return not client_close
                status = 206
                start, end = span
                cap = o.get("max_body")
                if cap is not None:
                    end = min(end, start + max(1, int(cap)) - 1)

        no_length = bool(o.get("no_length"))
        chunked = bool(o.get("chunked")) and version == "HTTP/1.1" and not no_length
        if o.get("chunked") and version == "HTTP/1.0":
            no_length = True  # HTTP/1.0 knows no chunked coding: fall back to close-delimited
        extra_bytes = int(o.get("extra_bytes") or 0)
        close = client_close or no_length or extra_bytes > 0

        hdrs: list[tuple[str, str]] = [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Server", "faultserver"),
            ("Content-Type", o.get("content_type") or "application/octet-stream"),
        ]
        if not ignore:
            hdrs.append(("Accept-Ranges", "bytes"))
        if etag:
            hdrs.append(("ETag", etag))
        if lm:
            hdrs.append(("Last-Modified", lm))
        if o.get("content_disposition") is not None:
            hdrs.append(("Content-Disposition", o["content_disposition"]))
        if o.get("gzip"):
            hdrs.append(("Vary", "Accept-Encoding"))
        if use_gzip:
            hdrs.append(("Content-Encoding", "gzip"))
        if status == 206:
            shown_total = "*" if o.get("star_total") else total
            hdrs.append(("Content-Range", f"bytes {start}-{end}/{shown_total}"))
        body_len = end - start + 1 if total else 0
        if chunked:
            hdrs.append(("Transfer-Encoding", "chunked"))
        elif not no_length:
            hdrs.append(("Content-Length", str(body_len)))
        if close:
            hdrs.append(("Connection", "close"))
        for name, value in (o.get("headers") or {}).items():
            hdrs = [(k, v) for k, v in hdrs if k.lower() != name.lower()]
            if value is not None:
                hdrs.append((name, str(value)))

        sent(status)
        for code in o.get("interim") or ():
            hint = [("Link", "</style.css>; rel=preload")] if code == 103 else []
            writer.write(self._head(int(code), hint))
        writer.write(self._head(status, hdrs))
        if method == "HEAD":
            await writer.drain()
            return not close

        # Which faults apply to this response (each counted per GET response with a body).
        drop_at = stall_at = None
        with self._lock:
            if res.drop is not None and res.drop[1] < body_len:
                times, n = res.drop
                if times is None or res.drops_done < times:
                    res.drops_done += 1
                    drop_at = n
            if res.stall is not None and res.stall[1] < body_len:
                times, n = res.stall
                if times is None or res.stalls_done < times:
                    res.stalls_done += 1
                    stall_at = n
                    if res.unstall_event is None or res.unstall_event.is_set():
                        res.unstall_event = asyncio.Event()
            unstall = res.unstall_event

        view = memoryview(data)[start : start + body_len]
        rate = o.get("rate")
        size = RATE_WRITE_SIZE if rate else WRITE_SIZE
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        pos = 0
        while True:
            if drop_at is not None and pos >= drop_at:
                await writer.drain()
                raise _Close()  # the caller closes the socket mid-body
            if stall_at is not None and pos >= stall_at:
                stall_at = None
                assert unstall is not None
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(unstall.wait(), o.get("stall_seconds", 3600))
            if pos >= body_len:
                break
            stop = min(pos + size, body_len)
            for limit in (drop_at, stall_at):
                if limit is not None and pos < limit:
                    stop = min(stop, limit)
            if rate:
                # No burst: by time t at most rate * t bytes have gone out.
                delay = t0 + stop / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            piece = view[pos:stop]
            # Counted before the write: a client that has its bytes must already see them here.
            with self._lock:
                res.stats.bytes_sent += len(piece)
            if chunked:
                writer.write(b"%x\r\n" % len(piece))
                writer.write(piece)
                writer.write(b"\r\n")
            else:
                writer.write(piece)
            pos = stop
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        if extra_bytes:
            writer.write(b"!" * extra_bytes)
        await writer.drain()
        return not close
