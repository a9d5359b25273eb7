"""One download's life: probe → plan → workers → checkpoints → verify → finalize.

A :class:`Transfer` is driven by :meth:`Transfer.run` in a thread of its own (the daemon's
scheduler or ``freight get``). It starts worker threads, each streaming one byte range with
httpx and ``pwrite``-ing it into ``NAME.part``; the thread that called ``run`` becomes the
control loop: it checkpoints, measures speed, adapts the number of connections and collects
the workers' verdicts. The planner is touched only under ``self._lock``.

Rules it keeps (see fetch.py for the HTTP ones):
- Recorded progress never exceeds what is on disk: a checkpoint snapshots the committed
  ranges, ``fdatasync``s, then records them (store.save_progress) in one transaction.
- Never splice two versions: a changed validator, size or a 200 to an If-Range request restarts
  the download from zero (and says so); a server that sends the wrong range is not split again.
- 403/410 once we hold data means the link expired: state ``needs_refresh``, data kept.
- 429/503 or a refused connection lowers the connection cap for that host instead of failing.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from freight.engine import files
from freight.engine.adaptive import ConnectionGoal
from freight.engine.http import lean as wire

if TYPE_CHECKING:
    import ssl

    import httpx
from freight.config import EngineSettings
from freight.engine.http.fetch import (
    USER_AGENT,
    Inflight,
    Reply,
    Validators,
    make_client,
    open_range,
    open_range_lean,
    ssl_context,
)
from freight.engine.limits import HostCaps, RateLimiter
from freight.engine.planner import Assignment, Planner
from freight.errors import (
    BusyError,
    ChecksumError,
    DiskFullError,
    FileChangedError,
    FreightError,
    HTTPStatusError,
    InputError,
    LinkExpiredError,
    ProtocolViolation,
    RangeError,
    Stopped,
    ThrottledError,
    TransientError,
)
from freight.models import Download, DownloadState
from freight.store import Store

log = logging.getLogger("freight.transfer")

StopReason = Literal["pause", "cancel", "shutdown"]
_TICK = 0.1  # control loop period, seconds
# Progress written but not yet synced is recorded this often (see Store.save_fast_progress):
# a SIGKILL then loses at most this much time's worth of bytes, not a checkpoint interval's.
_FAST_RECORD = 0.02
_SPEED_WINDOW = 2.0  # seconds of history behind the speed figure
# Adaptive connection count (adaptive.py): every window, while the last step paid, double the
# connections (up to max_connections). Doubling, not adding: a fast link finishes big files in
# seconds, so a slow additive climb would never get there.
_ADAPT_WINDOW = 0.1  # seconds between two decisions on the connection count
#: Files from this size on are preallocated beside the first connections (PartFile.
#: preallocate_in_background); below it a thread would cost more than the allocation.
BACKGROUND_PREALLOCATE_MIN = 16 << 20
_MAX_RESTARTS = 3  # restarts from zero (file changed) before giving up


@dataclass(frozen=True)
class Progress:
    done: int
    size: int | None
    speed: float  # bytes per second over the last couple of seconds
    connections: int
    eta: float | None


def parse_checksum(text: str) -> tuple[str, str]:
    """'sha256:HEX' or 'sha256=HEX' → ('sha256', 'hex'); raises InputError."""
    for sep in (":", "="):
        algo, found, digest = text.partition(sep)
        if found:
            break
    else:
        raise InputError(f"checksum must look like sha256=HEX, not {text!r}")
    algo, digest = algo.strip().lower(), digest.strip().lower()
    if algo not in ("sha256", "sha512", "sha1", "md5"):
        raise InputError(f"unsupported checksum algorithm {algo!r} (sha256, sha512, sha1, md5)")
    if not digest or any(c not in "0123456789abcdef" for c in digest):
        raise InputError(f"checksum digest must be hexadecimal: {digest!r}")
    import hashlib  # only when a checksum is asked for (~3 ms of start-up otherwise)

    if len(digest) != hashlib.new(algo).digest_size * 2:
        raise InputError(f"a {algo} digest has {hashlib.new(algo).digest_size * 2} hex digits")
    return algo, digest


def backoff(failures: int, base: float, cap: float, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never shorter than the server's Retry-After (RFC 9110
    §10.2.3 gives the least time to wait; "0" must not turn retries into a busy loop)."""
    delay = min(cap, base * 2 ** max(0, failures - 1)) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return delay


class Transfer:
    def __init__(
        self,
        store: Store,
        download_id: int,
        settings: EngineSettings,
        *,
        global_limiter: RateLimiter | None = None,
        host_caps: HostCaps | None = None,
        on_change: Callable[[Download], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.id = download_id
        self.settings = settings
        download = store.get(download_id)
        self._limiter = RateLimiter(download.limit)
        self._global = global_limiter or RateLimiter(None)
        self._hosts = host_caps or HostCaps(settings.max_connections)
        self._on_change = on_change
        self._on_notice = on_notice
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._wake = threading.Event()  # set by a worker that ends, and by stop()
        self._boot = files.boot_id()
        self._stop_reason: StopReason | None = None
        self._fatal: FreightError | None = None
        self._planner: Planner | None = None
        self._part: files.PartFile | None = None
        self._client: httpx.Client | None = None
        self._replies: set[Reply] = set()
        self._inflight: set[Inflight] = set()
        self._conns: set[wire.Connection] = set()  # lean connections still awaiting a head
        self._ssl_lock = threading.Lock()
        # A response head must arrive whole within this time, however slowly it trickles.
        self._head_timeout = 2 * settings.stall_timeout
        self._workers: list[threading.Thread] = []
        self._next_worker = 0
        self._alive = 0
        self._failures = 0
        self._goal = ConnectionGoal(settings.connections, settings.max_connections,
                                    settings.adaptive)
        self._url = download.url
        self._insecure = download.insecure
        self._ssl: ssl.SSLContext | None = None
        self._validators = Validators(download.etag, download.last_modified)
        self._size: int | None = download.size
        self._done = download.done
        self._had_data = download.done > 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._completed: Download | None = None  # as recorded by _complete
        # The row as read here serves the first attempt: whatever changes a download's URL,
        # headers or file (refresh, cancel) stops its transfer first.
        self._unused_row: Download | None = download
        self.notices: list[str] = []
        #: Set when another Freight process was writing this download (nothing was changed).
        self.busy: str | None = None

    # -- the outside's view ----------------------------------------------------------------

    def stop(self, reason: StopReason) -> None:
        """Ask the transfer to stop; returns at once, run() returns soon after."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            replies = list(self._replies)
            inflight = list(self._inflight)
            conns = list(self._conns)
        self._stop_event.set()
        self._wake.set()
        for reply in replies:
            reply.abort()
        for request in inflight:
            request.abort()
        for conn in conns:
            conn.abort()

    def set_limit(self, bytes_per_second: int | None) -> None:
        self._limiter.set_rate(bytes_per_second)

    def progress(self) -> Progress:
        with self._lock:
            done, size, connections = self._done, self._size, self._alive
            samples = list(self._samples)
        speed = 0.0
        if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
            speed = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        eta = (size - done) / speed if size is not None and speed > 0 else None
        return Progress(done, size, max(0.0, speed), connections, eta)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Download:
        """Drive the download to an end state and return it as stored."""
        try:
            self._run()
        except Stopped:
            return self._finish_stopped()
        except BusyError as exc:
            # Another process owns this download: leave its state alone, say why.
            log.warning("download %s: %s", self.id, exc)
            self.busy = str(exc)
            return self.store.get(self.id)
        except LinkExpiredError as exc:
            return self._end(DownloadState.NEEDS_REFRESH, exc)
        except DiskFullError as exc:
            return self._end(DownloadState.PAUSED, exc)
        except FreightError as exc:
            return self._end(DownloadState.FAILED, exc)
        except Exception as exc:  # a bug: keep the daemon up, keep the data, say so
            log.exception("download %s: unexpected error", self.id)
            return self._end(
                DownloadState.FAILED, FreightError(f"internal error: {exc!r}"), kind="internal"
            )
        finally:
            if self._part is not None:
                self._part.close()
            if self._client is not None:
                self._client.close()
        return self._completed or self.store.get(self.id)

    def _end(
        self, state: DownloadState, exc: FreightError, kind: str | None = None
    ) -> Download:
        log.info("download %s: %s (%s)", self.id, state.value, exc)
        download = self.store.set_state(self.id, state, error=str(exc), error_kind=kind or exc.kind)
        self._changed(download)
        return download

    def _finish_stopped(self) -> Download:
        reason = self._stop_reason or "pause"
        if reason == "shutdown":
            return self.store.get(self.id)  # stays active: the next start resumes it
        if reason == "cancel":
            download = self.store.get(self.id)
            if self._part is not None:
                self._part.close()
                self._part = None
            files.remove_quietly(download.part_path)
            self.store.clear_progress(self.id)
            download = self.store.set_state(self.id, DownloadState.REMOVED)
        else:
            download = self.store.set_state(self.id, DownloadState.PAUSED)
        self._changed(download)
        return download

    def _changed(self, download: Download | None = None) -> None:
        if self._on_change is not None:
            try:
                self._on_change(download or self.store.get(self.id))
            except Exception:
                log.exception("on_change callback failed")

    def _notice(self, message: str) -> None:
        log.warning("download %s: %s", self.id, message)
        self.notices.append(message)
        if self._on_notice is not None:
            self._on_notice(message)

    def _backoff(self, failures: int, exc: TransientError) -> float:
        return backoff(failures, self.settings.retry_base, self.settings.retry_max, exc.retry_after)

    def _check_stop(self) -> None:
        if self._stop_event.is_set():
            raise Stopped("stopped")

    def _run(self) -> None:
        restarts = 0
        single_only = False
        while True:
            self._check_stop()
            try:
                self._attempt(single_only)
                return
            except (FileChangedError, RangeError) as exc:
                self._check_stop()
                restarts += 1
                if restarts > _MAX_RESTARTS:
                    raise
                if isinstance(exc, RangeError):
                    single_only = True
                self._notice(f"{exc}: restarting from zero")
                self._reset()

    def _reset(self) -> None:
        """Forget all progress and validators: the next attempt starts from byte 0."""
        with self._lock:
            self._planner = None
            self._done = 0
            self._fatal = None
            self._failures = 0
        self._validators = Validators()
        self._size = None
        self.store.clear_progress(self.id)
        self.store.update(self.id, size=None, resumable=False, etag=None, last_modified=None)
        if self._part is not None:
            self._part.truncate(0)

    @staticmethod
    def _open_part(path: str, *, create: bool = True) -> files.PartFile:
        part = files.PartFile(path, create=create)
        try:
            part.lock()
        except BusyError:
            part.close()
            raise
        return part

    def _headers(self, download: Download) -> dict[str, str]:
        headers = dict(download.headers)
        headers.update(self.store.secret_headers(self.id))
        if download.referrer and not any(k.lower() == "referer" for k in headers):
            headers["Referer"] = download.referrer
        return headers

    def _attempt(self, single_only: bool) -> None:
        download, self._unused_row = self._unused_row or self.store.get(self.id), None
        headers = self._headers(download)
        segments = self.store.resume_segments(self.id, self._boot)
        part_path = download.part_path
        if (
            not single_only
            and download.resumable
            and download.size is not None
            and segments
            and part_path is not None
            and os.path.exists(part_path)
        ):
            planner = Planner(download.size, self.settings.min_split_size, segments)
            if planner.restored:
                self._url = download.url
                self._size = download.size
                self._part = self._part or self._open_part(part_path, create=False)
                if self._part.size_on_disk() < download.size:
                    self._part.preallocate(download.size)
                with self._lock:
                    self._planner = planner
                    self._done = planner.done
                log.info(
                    "download %s: resuming at %d of %d bytes", self.id, planner.done, download.size
                )
                self._segmented(planner, None, headers)
                self._complete()
                return
            self._notice("the recorded progress does not match the file: restarting")
            self._reset()

        reply, download = self._probe(download, headers)
        try:
            assert download.part_path is not None
            if self._part is None:
                self._part = self._open_part(download.part_path)
            if reply.size is not None:
                if self.settings.max_size is not None and reply.size > self.settings.max_size:
                    raise ProtocolViolation(
                        f"the file is {reply.size} bytes, "
                        f"over the {self.settings.max_size}-byte limit"
                    )
                needed = reply.size - self._part.size_on_disk()
                if needed > 0 and files.free_space(download.dir) < needed:
                    raise DiskFullError(
                        f"not enough free space in {download.dir} for {reply.size} bytes"
                    )
            if reply.size == 0:
                pass  # a zero-byte file: nothing to fetch (the 416's body is not the file)
            elif reply.ranged and reply.size and not single_only:
                if reply.size >= BACKGROUND_PREALLOCATE_MIN:
                    self._part.preallocate_in_background(reply.size)
                else:
                    self._part.preallocate(reply.size)
                planner = Planner(reply.size, self.settings.min_split_size)
                with self._lock:
                    self._planner = planner
                    self._done = 0
                self._segmented(planner, reply, headers)
            else:
                if not reply.ranged or single_only:
                    log.info("download %s: one stream (the server does not split)", self.id)
                self._single(reply, headers)
        finally:
            reply.close()
            if reply.conn is not None:
                reply.conn.close()
        self._complete()

    def _probe(self, download: Download, headers: dict[str, str]) -> tuple[Reply, Download]:
        """GET with ``Range: bytes=0-``: learns size, ranges, validators and name at once.
        Returns the reply and the download as recorded with what it learnt."""
        failures = 0
        while True:
            self._check_stop()
            try:
                reply = self._probe_lean(download.url, headers) or self._open_tracked(
                    download.url, 0, None, headers=headers
                )
                break
            except HTTPStatusError as exc:
                if exc.status in (401, 403, 410) and (self._had_data or download.done > 0):
                    raise LinkExpiredError(
                        f"the link no longer works (HTTP {exc.status}): it needs refreshing"
                    ) from exc
                raise
            except TransientError as exc:
                failures += 1
                if failures >= self.settings.max_tries:
                    raise
                delay = self._backoff(failures, exc)
                log.info("download %s: %s; retrying in %.1fs", self.id, exc, delay)
                if self._stop_event.wait(delay):
                    raise Stopped("stopped") from exc
        self._url = reply.url
        self._validators = reply.validators
        self._size = reply.size
        fields: dict[str, object] = {
            "final_url": reply.url,
            "size": reply.size,
            "resumable": reply.ranged and reply.size is not None,
            "etag": reply.validators.etag,
            "last_modified": reply.validators.last_modified,
            "mime": (reply.content_type or "").split(";")[0].strip() or download.mime,
        }
        if download.name is None:
            name = files.choose_name(download.requested_name, reply.content_disposition, reply.url)
            fields["name"] = files.reserve(download.dir, name)
        elif (
            download.part_path
            and not os.path.exists(download.part_path)
            and os.path.lexists(os.path.join(download.dir, download.name))
        ):
            # Our name was taken meanwhile: never write over someone else's file.
            fields["name"] = files.reserve(download.dir, download.name)
        download = self.store.update(self.id, **fields)
        self._changed(download)
        return reply, download

    # -- segmented mode --------------------------------------------------------------------

    def _segmented(self, planner: Planner, first: Reply | None, headers: dict[str, str]) -> None:
        host = urlsplit(self._url).hostname or ""
        goal = self._goal = ConnectionGoal(
            self.settings.connections, self.settings.max_connections, self.settings.adaptive,
            window=_ADAPT_WINDOW,
        )
        last_checkpoint = last_fast = time.monotonic()

        if first is not None:
            # The probe's body starts at byte 0: give its worker the piece that starts there
            # now, before any other worker can take it.
            first_wid = self._next_worker
            self._next_worker += 1
            with self._lock:
                assignment = planner.assign(first_wid)
            assert assignment is not None and assignment.start == first.start
            if planner.size <= self.settings.min_split_size:
                # Too small to split: fetch it on this thread (no worker thread to start and
                # wait for: that would cost more than the file itself).
                with self._lock:
                    self._alive += 1
                self._worker(first_wid, host, headers, (first, assignment))
            else:
                # The other connections first: once the probe's worker streams, each new
                # thread waits for the GIL to start (up to the 5 ms switch interval each),
                # and 15 of them took ~50 ms. The probe's body waits in the socket meanwhile.
                with self._lock:
                    more = planner.has_work()
                if more:
                    cap = min(self._goal.target, max(1, self._hosts.cap(host)))
                    for _ in range(cap - 1):
                        self._spawn(host, headers, None)
                self._spawn(host, headers, (first, assignment), first_wid)
        while True:
            now = time.monotonic()
            with self._lock:
                alive, fatal = self._alive, self._fatal
                has_work = planner.has_work()
                self._samples.append((now, self._done))
                while self._samples and now - self._samples[0][0] > _SPEED_WINDOW:
                    self._samples.popleft()
            stopping = self._stop_event.is_set() or fatal is not None
            if not stopping and has_work:
                cap = min(self._goal.target, max(1, self._hosts.cap(host)))
                for _ in range(cap - alive):
                    self._spawn(host, headers, None)
                    alive += 1
            if alive == 0 and (stopping or not has_work):
                break
            if now - last_checkpoint >= self.settings.checkpoint_interval:
                self._checkpoint()
                last_checkpoint = last_fast = now
            elif self._boot is not None and now - last_fast >= _FAST_RECORD:
                self._record_unsynced()
                last_fast = now
            with self._lock:
                changed = goal.observe(now, self._done, alive, has_work)
            if changed:
                log.info("download %s: %s", self.id, changed)
            # A worker that ends wakes the loop at once: a small file is done in milliseconds,
            # and waiting out the tick would cost more than the transfer itself.
            self._wake.wait(_FAST_RECORD if self._boot is not None else _TICK)
            self._wake.clear()

        for thread in self._workers:
            thread.join()
        self._workers.clear()
        if not planner.complete:
            self._checkpoint()  # a complete file is synced and recorded by _complete
        self._check_stop()
        if self._fatal is not None:
            raise self._fatal
        if not planner.complete:
            raise TransientError("the download stopped before the file was complete")

    def _spawn(
        self,
        host: str,
        headers: dict[str, str],
        first: tuple[Reply, Assignment] | None,
        wid: int | None = None,
    ) -> None:
        if wid is None:
            wid = self._next_worker
            self._next_worker += 1
        with self._lock:
            self._alive += 1
        thread = threading.Thread(
            target=self._worker, args=(wid, host, headers, first), name=f"dl{self.id}-w{wid}",
            daemon=True,
        )
        self._workers.append(thread)
        thread.start()

    def _worker(
        self,
        wid: int,
        host: str,
        headers: dict[str, str],
        first: tuple[Reply, Assignment] | None,
    ) -> None:
        planner = self._planner
        assert planner is not None
        # The probe's connection is already open: it counts even if it overshoots the cap.
        holds_slot = self._hosts.acquire(host, force=first is not None)
        # The probe's own lean connection (if any) serves this worker's next ranges too.
        conn = first[0].conn if first is not None and first[0].conn else self._lean_connection()
        try:
            while holds_slot and not self._stop_event.is_set() and self._fatal is None:
                reply: Reply | None = None
                if first is not None:
                    reply, assignment = first
                    first = None
                else:
                    with self._lock:
                        if self._alive > self._goal.target:
                            return  # the connection count was lowered: this worker retires
                        next_assignment = planner.assign(wid)
                    if next_assignment is None:
                        return
                    assignment = next_assignment
                try:
                    if reply is None:
                        reply = self._open(assignment, headers, conn)
                    self._stream(reply, assignment)
                except ThrottledError as exc:
                    # The server wants fewer connections: lower the cap, and while others
                    # still work, retire this one instead of counting a failure.
                    lowered = self._hosts.lower(host)
                    with self._lock:
                        self._goal.lower(lowered)
                        others = self._alive - 1
                    if others > 0:
                        log.info("download %s: %s; %d connections now", self.id, exc, lowered)
                        return
                    if not self._failed(exc) or self._pause_after(exc):
                        return
                except TransientError as exc:
                    if not self._failed(exc) or self._pause_after(exc):
                        return
                except HTTPStatusError as exc:
                    if exc.status in (401, 403, 410):
                        self._set_fatal(
                            LinkExpiredError(
                                f"the link no longer works (HTTP {exc.status}): it needs refreshing"
                            )
                        )
                    else:
                        self._set_fatal(exc)
                    return
                except FreightError as exc:
                    self._set_fatal(exc)
                    return
                except Exception as exc:  # a bug: stop the transfer, keep the data
                    log.exception("download %s: worker %s crashed", self.id, wid)
                    self._set_fatal(FreightError(f"internal error: {exc!r}"))
                    return
                finally:
                    if reply is not None:
                        with self._lock:
                            self._replies.discard(reply)
                        reply.close()
                    with self._lock:
                        planner.release(assignment.piece_id)
        finally:
            if conn is not None:
                conn.close()
            if holds_slot:
                self._hosts.release(host)
            with self._lock:
                self._alive -= 1
            self._wake.set()

    def _set_fatal(self, exc: FreightError) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = exc

    def _failed(self, exc: TransientError) -> bool:
        """Count a failure; False (and a fatal error) once too many came without progress."""
        with self._lock:
            self._failures += 1
            failures = self._failures
        log.info("download %s: %s (failure %d)", self.id, exc, failures)
        if failures >= self.settings.max_tries:
            self._set_fatal(
                TransientError(f"gave up after {failures} failures in a row: {exc}")
            )
            return False
        return True

    def _pause_after(self, exc: TransientError) -> bool:
        """Wait out the backoff; True when the transfer was stopped meanwhile."""
        with self._lock:
            failures = self._failures
        delay = self._backoff(failures, exc)
        return self._stop_event.wait(delay)

    def _open_tracked(
        self,
        url: str,
        start: int,
        end: int | None,
        *,
        validators: Validators | None = None,
        size: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """open_range through httpx, abortable by stop() and bounded by a head deadline."""
        client = self._http()
        inflight = Inflight()
        with self._lock:
            self._inflight.add(inflight)
        if self._stop_event.is_set():
            inflight.abort()
        try:
            return open_range(
                client, url, start, end, validators=validators, size=size,
                headers=headers, inflight=inflight, head_timeout=self._head_timeout,
            )
        except TransientError:
            if self._stop_event.is_set():
                raise Stopped("stopped") from None
            raise
        finally:
            with self._lock:
                self._inflight.discard(inflight)

    def _http(self) -> httpx.Client:
        """The httpx client, made on first use: many downloads never need it (the lean
        reader probes plain URLs), and making one costs tens of milliseconds."""
        with self._lock:
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

    def _probe_lean(self, url: str, headers: dict[str, str]) -> Reply | None:
        """The probe through the lean reader; None when httpx must make it (a redirect, a
        proxy, an encoded or unframed body)."""
        conn = self._lean_connection(url)
        if conn is None:
            return None
        with self._lock:
            self._conns.add(conn)
        if self._stop_event.is_set():
            conn.abort()
        try:
            return open_range_lean(conn, url, 0, None, headers=headers)
        except wire.UseHttpx:
            conn.close()
            return None
        except TransientError:
            conn.close()
            if self._stop_event.is_set():
                raise Stopped("stopped") from None
            raise
        except BaseException:
            conn.close()
            raise
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _lean_connection(self, url: str | None = None) -> wire.Connection | None:
        url = url or self._url
        if not self.settings.lean_reader or not wire.usable_for(url):
            return None
        return wire.Connection(
            url,
            connect_timeout=self.settings.connect_timeout,
            stall_timeout=self.settings.stall_timeout,
            ssl_context=self._ssl_context() if url.startswith("https:") else None,
            read_size=self.settings.read_size,
            user_agent=USER_AGENT,
        )

    def _open(
        self, assignment: Assignment, headers: dict[str, str], conn: wire.Connection | None
    ) -> Reply:
        kwargs = {"validators": self._validators, "size": self._size, "headers": headers}
        reply: Reply | None = None
        if conn is not None:
            try:
                reply = open_range_lean(
                    conn, self._url, assignment.start, assignment.end, **kwargs  # type: ignore[arg-type]
                )
                with self._lock:
                    self._replies.add(reply)
            except wire.UseHttpx:
                conn.close()
        if reply is None:
            reply = self._open_tracked(
                self._url, assignment.start, assignment.end, **kwargs  # type: ignore[arg-type]
            )
        if not reply.ranged:
            reply.close()
            if self._validators.if_range():
                # RFC 9110 §13.1.5: If-Range did not match, so the server sent the whole
                # (new) file. Never splice it into the old one.
                raise FileChangedError("the file changed on the server (If-Range did not match)")
            raise RangeError("the server answered a range request with the whole file")
        return reply

    def _stream(self, reply: Reply, assignment: Assignment) -> None:
        """Copy the reply's body into the piece until the piece ends or the body does."""
        planner, part = self._planner, self._part
        assert planner is not None and part is not None
        with self._lock:
            self._replies.add(reply)
        if self._stop_event.is_set():
            return
        if reply.start != assignment.start:
            # Never write bytes at an offset they do not belong to.
            raise RangeError(f"a body from byte {reply.start} for a range at {assignment.start}")
        offset = assignment.start
        piece = assignment.piece_id
        try:
            for chunk in reply.chunks(self.settings.read_size):
                if self._stop_event.is_set() or self._fatal is not None:
                    return
                with self._lock:
                    allowed = planner.claim(piece, len(chunk))
                if allowed:
                    self._throttle(allowed)
                    part.pwrite(memoryview(chunk)[:allowed], offset)
                    offset += allowed
                    with self._lock:
                        planner.commit(piece, allowed)
                        self._done += allowed
                        self._failures = 0
                        self._had_data = True
                if allowed < len(chunk):
                    return  # the piece was split and its end reached
                with self._lock:
                    if offset >= planner.end_of(piece):
                        return
        except TransientError:
            if self._stop_event.is_set():
                return  # stop() shut the socket down under the read
            raise
        if self._stop_event.is_set():
            return
        with self._lock:
            short = offset < planner.end_of(piece)
        if short:
            raise TransientError(f"the connection ended at byte {offset}, before its range did")

    def _throttle(self, n: int) -> None:
        wait = max(self._limiter.delay(n), self._global.delay(n))
        if wait > 0:
            self._stop_event.wait(wait)

    def _checkpoint(self) -> None:
        """fdatasync the data, then record the committed ranges: never the other way round."""
        planner, part = self._planner, self._part
        if planner is None or part is None:
            return
        with self._lock:
            segments = planner.snapshot()
            done = planner.done
        part.sync()
        self.store.save_progress(self.id, segments, done)

    def _record_unsynced(self) -> None:
        """Record what pwrite has handed to the kernel, without a sync (valid for this boot)."""
        planner = self._planner
        if planner is None or self._boot is None:
            return
        with self._lock:
            segments = planner.snapshot()
            done = planner.done
        self.store.save_fast_progress(self.id, self._boot, segments, done)

    # -- single-stream mode ----------------------------------------------------------------

    def _single(self, reply: Reply, headers: dict[str, str]) -> None:
        """One connection, from byte 0: the server cannot split (or the size is unknown).

        Such a download cannot resume from the middle; a failure starts again from byte 0.
        """
        failures = 0
        current: Reply | None = reply
        while True:
            self._check_stop()
            try:
                if current is None:
                    current = self._open_tracked(self._url, 0, None, headers=headers)
                    if current.validators.conflicts_with(self._validators):
                        raise FileChangedError("the file changed on the server")
                self._stream_single(current)
                return
            except TransientError as exc:
                failures += 1
                if failures >= self.settings.max_tries:
                    raise
                delay = self._backoff(failures, exc)
                self._notice(f"{exc}; the server cannot resume, starting again in {delay:.1f}s")
                if self._stop_event.wait(delay):
                    raise Stopped("stopped") from exc
            finally:
                if current is not None:
                    with self._lock:
                        self._replies.discard(current)
                    if current is not reply:
                        current.close()
                current = None

    def _stream_single(self, reply: Reply) -> None:
        part = self._part
        assert part is not None
        with self._lock:
            self._replies.add(reply)
            self._done = 0
            self._alive = 1
        part.truncate(0)
        if reply.size:
            part.preallocate(reply.size)
        offset = 0
        last_save = time.monotonic()
        limit = self.settings.max_size
        try:
            for chunk in reply.chunks(self.settings.read_size):
                self._check_stop()
                if reply.size is not None and offset + len(chunk) > reply.size:
                    raise ProtocolViolation("the server sent more bytes than it declared")
                if limit is not None and offset + len(chunk) > limit:
                    raise ProtocolViolation(f"the file is over the {limit}-byte limit")
                self._throttle(len(chunk))
                part.pwrite(chunk, offset)
                offset += len(chunk)
                now = time.monotonic()
                with self._lock:
                    self._done = offset
                    self._had_data = True
                    self._samples.append((now, offset))
                    while self._samples and now - self._samples[0][0] > _SPEED_WINDOW:
                        self._samples.popleft()
                if now - last_save >= self.settings.checkpoint_interval:
                    # For display only: a single stream restarts from 0 on resume.
                    self.store.save_progress(self.id, [], offset)
                    last_save = now
        except TransientError:
            self._check_stop()
            raise
        finally:
            with self._lock:
                self._alive = 0
        if reply.size is not None and offset != reply.size:
            raise TransientError(f"the connection ended at byte {offset} of {reply.size}")
        if reply.size is None:
            part.truncate(offset)
            self._size = offset
            self.store.update(self.id, size=offset)

    # -- the end ---------------------------------------------------------------------------

    def _complete(self) -> None:
        download = self.store.get(self.id)
        assert download.part_path is not None and download.name is not None
        if self._part is None:
            self._part = self._open_part(download.part_path)
        part = self._part
        size = self._size if self._size is not None else 0
        if download.size is None or download.size != size:
            download = self.store.update(self.id, size=size)
        if part.size_on_disk() != size:
            part.truncate(size)
        part.sync()
        if download.checksum:
            algo, want = parse_checksum(download.checksum)
            got = _digest(part, algo, size)
            if got != want:
                part.close()
                self._part = None
                files.remove_quietly(download.part_path)
                self.store.clear_progress(self.id)
                self.store.update(self.id, name=None)
                raise ChecksumError(f"{algo} mismatch: expected {want}, got {got}")
        part.close()
        self._part = None
        name = files.finalize(download.part_path, download.dir, download.name)
        if name != download.name:
            self._notice(f"{download.name} appeared meanwhile; saved as {name}")
        with self._lock:
            self._done = size
        download = self.store.complete(self.id, name, size)
        self._completed = download
        log.info("download %s: completed %s (%d bytes)", self.id, download.path, size)
        self._changed(download)


def _digest(part: files.PartFile, algo: str, size: int) -> str:
    if algo == "sha256":
        return part.sha256(size)
    import hashlib

    digest = hashlib.new(algo)
    offset = 0
    while offset < size:
        chunk = os.pread(part.fd, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
