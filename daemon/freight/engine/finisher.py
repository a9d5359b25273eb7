"""The loop's small files are finished on one thread, in batches: write, sync and name each,
then record the whole batch in one transaction.

A small file's body is in memory when its request ends (engine/quick.py); what is left is
file-system work that may block (``fdatasync`` on a disk takes milliseconds: not on the
event loop) and its record. Doing that per download cost a thread hand-over and a
transaction each (bench/PROFILE.md §6); here the downloads that ended while the previous
batch was being finished form the next batch: one wake-up of this thread, one transaction
(StateKeeper.complete_many), one hop back to the loop. Each file is still sealed by
finish.seal, as every download is: synced before it is recorded, its checksum verified, its
final name taken without ever replacing a file (files.finalize). A .part the claim of the
name creates here is written through the descriptor that created it (shared.learnt's ``keep``).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from freight.engine.files import PartFile
from freight.engine.finish import log_completed, seal
from freight.engine.shared import open_locked
from freight.models import Download
from freight.states import StateKeeper

log = logging.getLogger("freight.transfer")

#: Downloads finished in one batch at most.
BATCH = 64


#: Claims the download's name and gives what its answer taught (shared.learnt); a .part
#: it creates is appended to the list given, open and locked.
Learn = Callable[[list[PartFile]], dict[str, object]]


@dataclass
class _Job:
    download: Download  # as recorded (with its claimed name unless ``learn`` claims it)
    body: bytes
    future: asyncio.Future[Download]
    learn: Learn | None


class Finisher:
    """One thread, started with the first job; it waits without a timer when idle."""

    def __init__(self, keeper: StateKeeper, loop: asyncio.AbstractEventLoop) -> None:
        self.keeper = keeper
        self._loop = loop
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0  # read and written on the loop only

    def _one_less(self, _: asyncio.Future[Download]) -> None:
        self._pending -= 1

    def finish(
        self, download: Download, body: bytes, learn: Learn | None = None
    ) -> asyncio.Future[Download]:
        """On the loop: write ``body`` as ``download``'s file and complete it; the future
        gets the download as recorded, or the error that ended it. ``learn``: the name is
        not claimed yet: claim it here, and record what it returns with the completion."""
        future: asyncio.Future[Download] = self._loop.create_future()
        self._pending += 1
        future.add_done_callback(self._one_less)
        self._jobs.put(_Job(download, body, future, learn))
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="finisher", daemon=True)
            self._thread.start()
        return future

    @property
    def backlog(self) -> int:
        """Downloads handed over and not finished yet (their bodies are in memory)."""
        return self._pending

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            ending = False
            while len(batch) < BATCH:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    ending = True
                    break
                batch.append(more)
            try:
                outcomes = self._finish(batch)
            except BaseException as exc:  # a bug: every job of the batch hears of it
                log.exception("finishing %d downloads failed", len(batch))
                outcomes = [(j.future, exc) for j in batch]
            try:
                self._loop.call_soon_threadsafe(_deliver, outcomes)
            except RuntimeError:  # the loop closed: the daemon is gone
                return
            if ending:
                return

    def _finish(
        self, batch: list[_Job]
    ) -> list[tuple[asyncio.Future[Download], Download | BaseException]]:
        outcomes: list[tuple[asyncio.Future[Download], Download | BaseException]] = []
        sealed: list[tuple[_Job, str, dict[str, object]]] = []
        store = self.keeper.store
        for job in batch:
            download = job.download
            try:
                claimed: list[PartFile] = []
                try:
                    learnt = job.learn(claimed) if job.learn is not None else {}
                    download = replace(download, **learnt)  # type: ignore[arg-type]
                    assert download.part_path is not None
                    part = _take(claimed, download.part_path) or open_locked(download.part_path)
                finally:
                    for left in claimed:  # not the one written: closed
                        left.close()
                try:
                    part.pwrite(job.body, 0)  # a longer old part is cut to size by seal
                except BaseException:
                    part.close()
                    raise
                name = seal(store, download, part, len(job.body), _notice_for(download.id))
            except Exception as exc:
                outcomes.append((job.future, exc))
                continue
            sealed.append((job, name, learnt))
        if not sealed:
            return outcomes
        try:
            answers = self.keeper.complete_many(
                [(job.download.id, name, len(job.body), learnt) for job, name, learnt in sealed]
            )
        except Exception as exc:  # the store failed: none of the batch is recorded
            return outcomes + [(job.future, exc) for job, _, _ in sealed]
        for (job, _, _), answer in zip(sealed, answers, strict=True):
            if isinstance(answer, Download):
                log_completed(answer)
            outcomes.append((job.future, answer))
        return outcomes


def _take(parts: list[PartFile], path: str) -> PartFile | None:
    """The .part of ``path`` the name's claim just created (open and locked), if it did."""
    for part in parts:
        if part.path == path:
            parts.remove(part)
            return part
    return None


def _notice_for(download_id: int) -> Callable[[str], None]:
    def notice(message: str) -> None:
        log.warning("download %s: %s", download_id, message)

    return notice


def _deliver(outcomes: list[tuple[asyncio.Future[Download], Download | BaseException]]) -> None:
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
