"""One download's life: probe → plan → transfer → verify → finalize.

A :class:`Transfer` is driven by :meth:`Transfer.run` in a thread of its own (the daemon's
scheduler or ``freight get``). It probes, then hands the file to a segmented transfer
(segmented.py: worker threads, the control loop, checkpoints) or a single stream
(single.py), then to finish.py. What an error means — retry, fewer connections, restart
from zero, one stream, needs refresh, fail — is decided by lifecycle.py alone; the bytes come
through one seam (http/source.py). Every change of the download's state goes through its
StateKeeper (freight.states), the one owner of state changes.

Rules it keeps:
- Probe with ``GET`` + a bounded ``Range: bytes=0-(W-1)`` (HEAD is often refused or wrong;
  W = :func:`probe_window`) and keep that connection as the first piece's stream, window
  after window: 206 with a total → segmented and resumable; 200 with Content-Length → one
  stream, restartable; no length → one stream, unknown size. Bounded, because an open-ended
  probe left the server pushing megabytes past the first window into a socket that was
  closed when the piece was split (1.35-1.98x the file served by real servers, issue 12).
  A probe for one stream only (after the server could not split) stays ``bytes=0-``.
- The name is chosen (Content-Disposition ``filename*`` first, else the URL) and claimed at
  once with ``O_EXCL`` (files.reserve): never two downloads on one name, never an overwrite.
- Never splice two versions: a restart from zero first forgets every progress record and
  validator (store.clear_progress), then truncates the part, before a byte is written.
- A resume trusts recorded progress only when it fits the file on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from freight.config import EngineSettings
from freight.engine import files, lifecycle
from freight.engine.finish import complete, conclude
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.engine.http.source import HttpSource, Lane, RangeSource
from freight.engine.http.validate import Validators
from freight.engine.limits import HostCaps, RateLimiter
from freight.engine.planner import Planner
from freight.engine.segmented import Segmented
from freight.engine.shared import (
    Attempt,
    Shared,
    learnt,
    open_locked,
    records_fit,
    request_headers,
    still_at,
)
from freight.engine.single import SingleStream
from freight.errors import (
    BusyError,
    DiskFullError,
    FreightError,
    ProtocolViolation,
    Stopped,
)
from freight.models import Download
from freight.states import StateKeeper
from freight.store import Store

log = logging.getLogger("freight.transfer")

StopReason = Literal["pause", "cancel", "shutdown"]
#: Files from this size on are preallocated beside the first connections (PartFile.
#: preallocate_in_background); below it a thread would cost more than the allocation.
BACKGROUND_PREALLOCATE_MIN = 16 << 20


def probe_window(settings: EngineSettings) -> int:
    """The bytes the probe asks for (``bytes=0-(W-1)``): the window the first piece's
    connection takes before the others split the file (segmented._start), the min split
    size (1 MiB by default). Not more: no split cuts into a window in flight, so the first
    W bytes of the file come through this one connection while others open theirs; not
    less: each window costs a request head. A file smaller than W comes whole in the
    probe's 206 (``bytes 0-(size-1)/size``)."""
    return max(1, settings.min_split_size)


@dataclass(frozen=True)
class Progress:
    done: int
    size: int | None
    speed: float  # bytes per second over the last couple of seconds
    connections: int
    eta: float | None


class Transfer:
    def __init__(
        self,
        store: Store,
        download_id: int,
        settings: EngineSettings,
        *,
        keeper: StateKeeper | None = None,
        global_limiter: RateLimiter | None = None,
        host_caps: HostCaps | None = None,
        on_notice: Callable[[str], None] | None = None,
        source: RangeSource | None = None,
    ) -> None:
        self.store = store
        self.id = download_id
        self.settings = settings
        self.keeper = keeper or StateKeeper(store)
        download = store.get(download_id)
        self._limiter = RateLimiter(download.limit)
        self._hosts = host_caps or HostCaps(settings.max_connections)
        self._on_notice = on_notice
        self._source = source or HttpSource(settings, insecure=download.insecure)
        self._policy = lifecycle.Policy.from_settings(settings)
        self._shared = Shared(
            self._limiter, global_limiter or RateLimiter(None), done=download.done,
            size=download.size,
        )
        self._boot = files.boot_id()
        self._stop_reason: StopReason | None = None
        self._part: files.PartFile | None = None
        self._url = download.url
        self._validators = Validators(download.etag, download.last_modified)
        self._completed: Download | None = None  # as recorded by finish.complete
        # The row as read here serves the first attempt: whatever changes a download's URL,
        # headers or file (refresh, cancel) stops its transfer first.
        self._unused_row: Download | None = download
        self._first_row = download
        self.notices: list[str] = []
        #: Set when another Freight process was writing this download (nothing was changed).
        self.busy: str | None = None

    # -- the outside's view ----------------------------------------------------------------

    def stop(self, reason: StopReason) -> None:
        """Ask the transfer to stop; returns at once, run() returns soon after."""
        s = self._shared
        with s.lock:
            if self._stop_reason is None:
                self._stop_reason = reason
        s.stop.set()
        s.wake.set()
        self._source.abort()

    def set_limit(self, bytes_per_second: int | None) -> None:
        self._limiter.set_rate(bytes_per_second)

    def progress(self) -> Progress:
        s = self._shared
        with s.lock:
            done, size, connections = s.done, s.size, s.alive
            speed = s.speed.speed()
        eta = (size - done) / speed if size is not None and speed > 0 else None
        return Progress(done, size, speed, connections, eta)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Download:
        """Drive the download to an end state and return it as stored. Every worker thread
        of the transfer has ended when it returns, whatever failed; a store that fails (a
        full disk under FREIGHT_HOME, a locked database) ends it as well, told as such."""
        outcome: BaseException | None = None
        try:
            self._run()
        except BaseException as exc:
            outcome = exc
        finally:
            if self._part is not None:
                self._part.close()
                self._part = None
            self._source.close()
        if isinstance(outcome, BusyError):
            self.busy = str(outcome)
        elif outcome is not None and not isinstance(outcome, Exception):
            raise outcome  # KeyboardInterrupt, SystemExit: not ours to swallow
        if outcome is None and self._completed is not None:
            return self._completed
        return conclude(
            self.keeper, self.id, outcome, stop_reason=self._stop_reason or "pause",
            first_row=self._first_row,
        )

    def _forget_unsynced(self) -> None:  # a failed sync: only synced checkpoints are true
        self.store.forget_unsynced(self.id)

    def _notice(self, message: str) -> None:
        log.warning("download %s: %s", self.id, message)
        self.notices.append(message)
        if self._on_notice is not None:
            self._on_notice(message)

    def _run(self) -> None:
        restarts = 0
        single_only = False
        while True:
            self._shared.check_stop()
            try:
                self._attempt(single_only)
                return
            except FreightError as exc:
                decision = lifecycle.after_attempt(exc, restarts=restarts, policy=self._policy)
                if decision.verdict is lifecycle.Verdict.FAIL:
                    raise
                self._shared.check_stop()
                restarts = decision.count
                single_only = single_only or decision.verdict is lifecycle.Verdict.ONE_STREAM
                self._notice(f"{exc}: restarting from zero")
                self._reset()

    def _reset(self) -> None:
        """Forget all progress and validators: the next attempt starts from byte 0."""
        s = self._shared
        with s.lock:
            s.done = 0
            s.fatal = None
            s.failures = 0
            s.size = None
        self._validators = Validators()
        # One transaction, before the truncation and before any byte of the next attempt.
        self.store.clear_progress(
            self.id, size=None, resumable=False, etag=None, last_modified=None
        )
        if self._part is not None:
            self._part.truncate(0)

    def _this_attempt(self, headers: dict[str, str]) -> Attempt:
        assert self._part is not None
        return Attempt(
            self.id, self.settings, self.store, self._source, self._part, self._url,
            self._validators, headers,
        )

    def _segmented(
        self, planner: Planner, headers: dict[str, str], first: tuple[Reply, Lane] | None
    ) -> None:
        """Run one segmented attempt; its workers are all joined before anything else is
        decided (a restart truncates the part: no worker may still write into it)."""
        # Segmented.run joins every worker it started before it returns or raises.
        Segmented(
            self._shared, self._this_attempt(headers), planner=planner, hosts=self._hosts,
            boot=self._boot,
        ).run(first)

    def _attempt(self, single_only: bool) -> None:
        s = self._shared
        download, self._unused_row = self._unused_row or self.store.get(self.id), None
        headers = request_headers(self.store, download)
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
                self._part = self._part or open_locked(
                    part_path, create=False, on_sync_failure=self._forget_unsynced
                )
            if planner.restored and self._part and records_fit(self._part, segments):
                self._url = download.url
                if self._part.size_on_disk() < download.size:
                    self._part.preallocate(download.size)
                with s.lock:
                    s.size = download.size
                    s.done = planner.done
                log.info(
                    "download %s: resuming at %d of %d bytes", self.id, planner.done, download.size
                )
                self._segmented(planner, headers, None)
                self._complete()
                return
            self._notice("the recorded progress does not match the file: restarting")
            self._reset()
        elif part_path is None or not os.path.exists(part_path):
            self.store.clear_progress(self.id)  # records of a part that is gone: not true

        lane = self._source.lane()
        try:
            reply, download = self._probe(download, headers, lane, single_only)
            try:
                self._after_probe(reply, lane, download, headers, single_only)
            finally:
                reply.close()
        finally:
            lane.close()
        self._complete()

    def _after_probe(
        self, reply: Reply, lane: Lane, download: Download, headers: dict[str, str],
        single_only: bool,
    ) -> None:
        assert download.part_path is not None
        # This attempt starts from byte 0 (the .part was deleted, its name was taken, the
        # records did not fit, a single stream): forget every record of earlier bytes before
        # the first byte is written, or a kill before the first checkpoint would resume from
        # them over preallocated zeros.
        self.store.clear_progress(self.id)
        with self._shared.lock:
            self._shared.done = 0
        if self._part is not None and not still_at(self._part, download.part_path):
            # The part held open is no longer the file under its name (deleted, or a new
            # name was reserved meanwhile): write the file that will be finalised.
            self._part.close()
            self._part = None
        if self._part is None:
            self._part = open_locked(download.part_path, on_sync_failure=self._forget_unsynced)
        if reply.size is not None:
            if self.settings.max_size is not None and reply.size > self.settings.max_size:
                raise ProtocolViolation(
                    f"the file is {reply.size} bytes, over the {self.settings.max_size}-byte limit"
                )
            needed = reply.size - self._part.size_on_disk()
            if needed > 0 and files.free_space(download.dir) < needed:
                raise DiskFullError(
                    f"not enough free space in {download.dir} for {reply.size} bytes"
                )
        if reply.size == 0:
            return  # a zero-byte file: nothing to fetch (the 416's body is not the file)
        if reply.ranged and reply.size and not single_only:
            if reply.size >= BACKGROUND_PREALLOCATE_MIN:
                self._part.preallocate_in_background(reply.size)
            else:
                self._part.preallocate(reply.size)
            planner = Planner(reply.size, self.settings.min_split_size)
            with self._shared.lock:
                self._shared.done = 0
            self._segmented(planner, headers, (reply, lane))
            return
        if not reply.ranged or single_only:
            log.info("download %s: one stream (the server does not split)", self.id)
        SingleStream(self._shared, self._this_attempt(headers), notice=self._notice).run(reply)

    def _probe(
        self, download: Download, headers: dict[str, str], lane: Lane, single_only: bool
    ) -> tuple[Reply, Download]:
        """GET with ``Range: bytes=0-(W-1)`` (``bytes=0-`` for one stream): learns size,
        ranges, validators and name at once. Returns the reply and the download as recorded
        with what it learnt."""
        s = self._shared
        failures = 0
        end = None if single_only else probe_window(self.settings)
        while True:
            s.check_stop()
            try:
                request = RangeRequest(download.url, 0, end, headers=headers)
                reply = self._source.open(request, lane=lane)
                break
            except FreightError as exc:
                decision = lifecycle.after_error(
                    exc, mode="probe", failures=failures,
                    had_data=s.had_data or download.done > 0, policy=self._policy,
                )
                if decision.verdict is lifecycle.Verdict.REFRESH:
                    assert decision.error is not None
                    raise decision.error from exc
                if decision.verdict is not lifecycle.Verdict.RETRY:
                    raise
                failures = decision.count
                log.info("download %s: %s; retrying in %.1fs", self.id, exc, decision.delay)
                if s.stop.wait(decision.delay):
                    raise Stopped("stopped") from exc
        self._url = reply.url
        self._validators = reply.validators
        s.size = reply.size
        return reply, self.keeper.update(self.id, **learnt(download, reply))

    def _complete(self) -> None:
        download = self.store.get(self.id)
        assert download.part_path is not None
        part = self._part or open_locked(download.part_path, on_sync_failure=self._forget_unsynced)
        self._part = None  # finish.complete closes it
        size = self._shared.size if self._shared.size is not None else 0
        self._completed = complete(self.keeper, self.id, part, size, self._notice)
        with self._shared.lock:
            self._shared.done = size
