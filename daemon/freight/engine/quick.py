"""A small file on the event loop: one request, the body in memory, one write (the small lane).

Most downloads of a "download all links" page, or of a script queueing a folder, are a few
hundred KiB. For them the threads' engine (transfer.py) cost more than the download: a
thread, its hand-overs with the loop, the planner, checkpoints (bench/PROFILE.md §6). A
:class:`QuickTransfer` runs on the daemon's loop instead and does only what a small file
needs, with the engine's own rules for each step:

- one ``GET`` with ``Range: bytes=0-(small_size-1)`` (the probe's request, transfer.py), made
  by aio.py with the lean reader's request bytes and checks (validate.validate), redirects
  followed hop by hop with each hop's headers for its origin (follow.Hops);
- the answer is the whole file only when it says so: a 206 ``bytes 0-(N-1)/N`` or a 200 with
  a Content-Length, N ≤ ``small_size``. Anything else — a bigger file, no length, a coded or
  chunked body, a range it cannot use, an error worth retrying — is no failure: the run ends
  with a :class:`HandOver` and the download is run as any other (a thread, a big slot), so
  every rule of the engine still applies to it. An error that no retry mends (404, a bad
  answer) ends the download here as the engine would (lifecycle.after_error, finish.conclude);
- what the answer teaches (shared.learnt: the name, chosen and claimed with O_EXCL) is
  recorded with the completion, in the finisher's one transaction, when the body comes at
  once; a body slower than :data:`RECORD` has it recorded then, so that its name shows and
  a pause can keep its bytes;
- the body is written, synced, verified and named by finish.seal on the finisher's thread
  (finisher.py: an fdatasync must not stall the loop), and recorded in a batch with the
  others that ended meanwhile. A stop that comes during that step is too late: the
  download completes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from freight.config import EngineSettings
from freight.engine import lifecycle
from freight.engine.files import PartFile
from freight.engine.finish import conclude
from freight.engine.http.aio import AioConnection, AioPool, origin_of
from freight.engine.http.follow import Hops, Redirect
from freight.engine.http.head import UseHttpx
from freight.engine.http.lean import answer_of, usable_for
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.engine.http.request import origin_of as scope_of
from freight.engine.limits import HostCaps
from freight.engine.shared import learnt, open_locked, request_headers
from freight.engine.transfer import Progress
from freight.errors import (
    FileChangedError,
    FreightError,
    ProtocolViolation,
    RangeError,
    Stopped,
    ThrottledError,
)
from freight.models import Download, Segment
from freight.states import StateKeeper

log = logging.getLogger("freight.transfer")

StopReason = Literal["pause", "cancel", "shutdown"]
#: Writes a body as the download's file and completes it (Finisher.finish); the third
#: argument, when given, claims the name first (on the finisher's thread).
Finish = Callable[
    [Download, bytes | bytearray, "Callable[[], dict[str, object]] | None"], Awaitable[Download]
]
#: Seconds of a body after which its name is claimed and recorded before the end: a slow
#: small file shows its name; a fast one records it with its completion, one transaction.
RECORD = 0.25


@dataclass(frozen=True)
class HandOver:
    """This download is not one for the loop: run it as any other. ``size`` when learnt."""

    why: str
    size: int | None = None


def may_run_quick(
    download: Download, settings: EngineSettings, *, proxies_may_apply: bool
) -> bool:
    """Whether a download can be tried on the loop: nothing of it fetched yet, no speed
    limit of its own (a limit is the threads' engine's to keep), a URL the lean reader can
    make (http(s), an ASCII host, no proxy: lean.usable_for) and a TLS check as usual."""
    return (
        download.done == 0
        and download.limit is None
        and not download.insecure
        and settings.lean_reader
        and usable_for(download.url, proxies=proxies_may_apply)
    )


class QuickTransfer:
    """One small download on the loop; :meth:`run` is a coroutine, :meth:`stop` cancels it."""

    def __init__(
        self,
        download: Download,
        settings: EngineSettings,
        *,
        keeper: StateKeeper,
        pool: AioPool,
        host_caps: HostCaps,
        small_size: int,
        finish: Finish,
        proxies_may_apply: bool,
        body_in: Callable[[], None] | None = None,
    ) -> None:
        self.id = download.id
        self._row = download
        self.settings = settings
        self.keeper = keeper
        self._pool = pool
        self._hosts = host_caps
        self._small_size = small_size
        self._finish = finish
        self._body_in = body_in  # told once the body is in memory and its connection free
        self._proxies = proxies_may_apply
        self._task: asyncio.Task[Download | HandOver] | None = None
        self._stop_reason: StopReason | None = None
        self._finishing = False
        self._reading: AioConnection | None = None  # the connection its body comes by
        self._body: bytearray | None = None  # the whole body, once it came
        self._host = ""
        self._host_held = False
        self._reply: Reply | None = None  # the answer, once it came
        self._learnt: dict[str, object] | None = None  # what it taught, once recorded
        self._size: int | None = download.size

    # -- the outside's view (daemon/running.TransferLike) ----------------------------------

    def stop(self, reason: StopReason) -> None:
        """Ask the run to stop: cancels it unless its file is being finished already."""
        if self._stop_reason is None:
            self._stop_reason = reason
        if self._task is not None and not self._finishing:
            self._task.cancel()

    def set_limit(self, bytes_per_second: int | None) -> None:
        """A limit set while a small file runs applies from its next run (it is one request)."""

    def progress(self) -> Progress:
        return Progress(self._came(), self._size, 0.0, 1, None)

    def _came(self) -> int:
        if self._body is not None:
            return len(self._body)
        return self._reading.received_count() if self._reading is not None else 0

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> Download | HandOver:
        """The download as it ended, or a HandOver: nothing under a final name, the row still
        ``active`` (its name claimed and recorded only when its body was slow)."""
        self._task = asyncio.current_task()  # type: ignore[assignment]
        if self._stop_reason is not None:  # stopped before it began
            return self._end(Stopped("stopped"))
        host = self._host = origin_of(self._row.url)[1]
        if self._hosts.cap(host) < self._hosts.default:
            # The host pushed back lately (its cap is lowered until it has been calm for a
            # while, limits.HostCaps): its files go to the threads' engine, which waits and
            # retries at the pace of max_active, instead of 32 at a time here.
            return HandOver("the host pushed back lately")
        if not self._hosts.acquire(host):
            return HandOver("every connection to the host is taken")
        self._host_held = True
        try:
            return await self._run()
        except asyncio.CancelledError:
            if self._stop_reason is None:
                raise  # not our stop: the loop itself is ending
            if self._stop_reason != "cancel":
                self._keep_what_came()
            return self._end(Stopped("stopped"))
        finally:
            self._release_host()

    def _release_host(self) -> None:
        if self._host_held:
            self._host_held = False
            self._hosts.release(self._host)

    def _keep_what_came(self) -> None:
        """A pause or a shutdown during the body: the bytes that came are written, synced
        and recorded as the first piece's progress, as the threads' engine checkpoints
        (segmented.py), so that the resume (by that engine) asks only for the rest. Only for
        a resumable answer (a 206 with its total): a 200 restarts from zero anyway."""
        got = self._reading.received() if self._reading is not None else b""
        if got and self._learnt is None and self._reply is not None:
            try:
                self._record()
            except FreightError as exc:
                log.warning("download %s: the bytes that came are not kept: %s", self.id, exc)
                return
        row = self._row
        if not got or not row.resumable or row.size is None or row.part_path is None:
            return
        try:
            part = open_locked(row.part_path)
            try:
                part.truncate(0)
                part.pwrite(got, 0)
                part.sync()
            finally:
                part.close()
            self.keeper.store.save_progress(self.id, [Segment(0, row.size, len(got))], len(got))
        except FreightError as exc:  # nothing is recorded: the resume starts from zero
            log.warning("download %s: the bytes that came are not kept: %s", self.id, exc)

    def _end(self, outcome: Exception) -> Download:
        return conclude(
            self.keeper, self.id, outcome, stop_reason=self._stop_reason or "pause",
            first_row=self._row,
        )

    async def _run(self) -> Download | HandOver:
        download = self._row
        request = RangeRequest(  # scoped already: its URL holds no userinfo (urls.py)
            download.url, 0, self._small_size, origin=scope_of(download.url),
            headers=request_headers(self.keeper.store, download),
        )
        try:
            got = await self._fetch(request)
        except (UseHttpx, FileChangedError, RangeError) as exc:
            return HandOver(str(exc))
        except FreightError as exc:
            if isinstance(exc, ThrottledError):
                # The host pushed back (429, 503, a refused connection): one connection
                # fewer for everyone, as the threads' engine lowers it (limits.HostCaps).
                self._hosts.lower(self._host)
            policy = lifecycle.Policy.from_settings(self.settings)  # made only when needed
            decision = lifecycle.after_error(
                exc, mode="probe", failures=0, had_data=False, policy=policy
            )
            if decision.verdict is lifecycle.Verdict.RETRY:
                return HandOver(str(exc))  # the threads' engine waits and retries
            return self._end(decision.error or exc)
        if isinstance(got, HandOver):
            return got
        body = got
        self._finishing = True  # from here the download completes, or fails, not stops
        self._release_host()  # its connection is back in the pool
        if self._body_in is not None:
            self._body_in()
        try:
            learn = self._learn if self._learnt is None else None
            return await self._finish(self._row, body, learn)
        except FreightError as exc:
            return self._end(exc)

    async def _fetch(self, request: RangeRequest) -> bytearray | HandOver:
        """The request, hop by hop; the whole body (its answer kept in ``_reply``)."""
        pool = self._pool
        # One request, asked once: no later range of it needs what its redirects taught.
        hops = Hops(request, max_redirects=self.settings.max_redirects, scopes=None)
        while True:
            # A redirect may lead where the lean reader does not go (a proxied host).
            if not usable_for(hops.url, proxies=self._proxies):
                return HandOver("redirected to a URL for the threads' engine")
            conn, head = await pool.request(hops.url, hops.headers())
            try:
                answer = answer_of(head, hops.scoped)
            except BaseException:
                conn.close()
                raise
            if isinstance(answer, Redirect):
                await pool.drop_redirect_body(conn, head)
                hops.redirected(answer)
                continue
            break
        reply = hops.arrived(answer)
        size = reply.size
        if size is None or size > self._small_size or reply.start != 0 or reply.end != size:
            conn.close()
            return HandOver("not a small file", size)
        max_size = self.settings.max_size
        if max_size is not None and size > max_size:
            conn.close()
            raise ProtocolViolation(f"the file is {size} bytes, over the {max_size}-byte limit")
        self._size = size
        self._reply = reply
        self._reading = conn
        # A slow body: its name is claimed and recorded once it has taken RECORD seconds.
        body = self._body = await pool.body(conn, head, size, slow=(RECORD, self._record_soon))
        pool.give_back(conn)
        return body

    def _record_soon(self) -> None:
        if self._learnt is None and not self._finishing:
            try:
                self._record()
            except FreightError as exc:  # the completion records it, or the error tells
                log.warning("download %s: %s", self.id, exc)

    def _record(self) -> None:
        """Claim the name (O_EXCL) and record what the answer taught (shared.learnt)."""
        assert self._reply is not None
        self._learnt = learnt(self._row, self._reply)
        self._row = self.keeper.update(self.id, **self._learnt)

    def _learn(self, keep: list[PartFile]) -> dict[str, object]:
        """On the finisher's thread, for a body that came at once: claim the name there, to
        be recorded with the completion in one transaction (the .part it creates kept open
        in ``keep`` for the finisher to write through)."""
        assert self._reply is not None
        return learnt(self._row, self._reply, keep)

