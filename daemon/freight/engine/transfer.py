"""One download's life: probe → plan → transfer → verify → finalize.

A :class:`Transfer` is driven by :meth:`Transfer.run` in a thread of its own (the daemon's
scheduler or ``freight get``). It probes, then hands the file to a segmented transfer
(segmented.py: worker threads, the control loop, checkpoints) or a single stream
(single.py), then to finish.py. What an error means — retry, fewer connections, restart
from zero, one stream, needs refresh, fail — is decided by lifecycle.py alone; the bytes come
through one seam (http/source.py). Every change of the download's state goes through its
StateKeeper (freight.states), the one owner of state changes.

Rules it keeps:
- Probe with ``GET`` + ``Range: bytes=0-`` (HEAD is often refused or wrong) and keep that
  connection as the first piece's stream: 206 with a total → segmented and resumable; 200
  with Content-Length → one stream, restartable; no length → one stream, unknown size.
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
from freight.engine.finish import complete
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.engine.http.source import HttpSource, Lane, RangeSource
from freight.engine.http.validate import Validators
from freight.engine.limits import HostCaps, RateLimiter
from freight.engine.planner import Planner
from freight.engine.segmented import Segmented
from freight.engine.shared import Attempt, Shared
from freight.engine.single import SingleStream
from freight.errors import (
    BusyError,
    DiskFullError,
    FreightError,
    ProtocolViolation,
    Stopped,
)
from freight.models import Download, DownloadState
from freight.states import StateKeeper
from freight.store import Store

log = logging.getLogger("freight.transfer")

StopReason = Literal["pause", "cancel", "shutdown"]
#: Files from this size on are preallocated beside the first connections (PartFile.
#: preallocate_in_background); below it a thread would cost more than the allocation.
BACKGROUND_PREALLOCATE_MIN = 16 << 20


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
        except FreightError as exc:
            return self._end(lifecycle.end_state(exc), exc)
        except Exception as exc:  # a bug: keep the daemon up, keep the data, say so
            log.exception("download %s: unexpected error", self.id)
            return self._end(
                DownloadState.FAILED, FreightError(f"internal error: {exc!r}"), kind="internal"
            )
        finally:
            if self._part is not None:
                self._part.close()
            self._source.close()
        return self._completed or self.store.get(self.id)

    def _end(
        self, state: DownloadState, exc: FreightError, kind: str | None = None
    ) -> Download:
        log.info("download %s: %s (%s)", self.id, state.value, exc)
        return self.keeper.move(self.id, state, error=str(exc), error_kind=kind or exc.kind)

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
            return self.keeper.move(self.id, DownloadState.REMOVED)
        return self.keeper.move(self.id, DownloadState.PAUSED)

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
        self.store.clear_progress(self.id)
        self.store.update(self.id, size=None, resumable=False, etag=None, last_modified=None)
        if self._part is not None:
            self._part.truncate(0)

    def _this_attempt(self, headers: dict[str, str]) -> Attempt:
        assert self._part is not None
        return Attempt(
            self.id, self.settings, self.store, self._source, self._part, self._url,
            self._validators, headers,
        )

    def _segmented(self, planner: Planner, headers: dict[str, str]) -> Segmented:
        return Segmented(
            self._shared, self._this_attempt(headers), planner=planner, hosts=self._hosts,
            boot=self._boot,
        )

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
                self._url = download.url
                self._part = self._part or open_part(part_path, create=False)
                if self._part.size_on_disk() < download.size:
                    self._part.preallocate(download.size)
                with s.lock:
                    s.size = download.size
                    s.done = planner.done
                log.info(
                    "download %s: resuming at %d of %d bytes", self.id, planner.done, download.size
                )
                self._segmented(planner, headers).run(None)
                self._complete()
                return
            self._notice("the recorded progress does not match the file: restarting")
            self._reset()

        lane = self._source.lane()
        try:
            reply, download = self._probe(download, headers, lane)
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
        if self._part is None:
            self._part = open_part(download.part_path)
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
            self._segmented(planner, headers).run((reply, lane))
            return
        if not reply.ranged or single_only:
            log.info("download %s: one stream (the server does not split)", self.id)
        SingleStream(self._shared, self._this_attempt(headers), notice=self._notice).run(reply)

    def _probe(
        self, download: Download, headers: dict[str, str], lane: Lane
    ) -> tuple[Reply, Download]:
        """GET with ``Range: bytes=0-``: learns size, ranges, validators and name at once.
        Returns the reply and the download as recorded with what it learnt."""
        s = self._shared
        failures = 0
        while True:
            s.check_stop()
            try:
                reply = self._source.open(RangeRequest(download.url, headers=headers), lane=lane)
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
        part = self._part or open_part(download.part_path)
        self._part = None  # finish.complete closes it
        size = self._shared.size if self._shared.size is not None else 0
        self._completed = complete(self.keeper, self.id, part, size, self._notice)
        with self._shared.lock:
            self._shared.done = size


def open_part(path: str, *, create: bool = True) -> files.PartFile:
    """The download's ``.part``, locked against another Freight process (BusyError)."""
    part = files.PartFile(path, create=create)
    try:
        part.lock()
    except BusyError:
        part.close()
        raise
    return part


def request_headers(store: Store, download: Download) -> dict[str, str]:
    """The headers every request of the download carries: the user's, its secrets, Referer."""
    headers = dict(download.headers)
    headers.update(store.secret_headers(download.id))
    if download.referrer and not any(k.lower() == "referer" for k in headers):
        headers["Referer"] = download.referrer
    return headers


def learnt(download: Download, reply: Reply) -> dict[str, object]:
    """What the probe's reply tells about the download, as fields of its row; the name is
    chosen and claimed (files.reserve) when it has none yet or it was taken meanwhile."""
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
    return fields
