"""The queue: which downloads run, in which order, and every user action on them.

Rules it keeps:

- At most ``max_active`` transfers run; the rest wait as ``queued`` in ``position`` order
  (``move`` reorders). A free slot is filled at once (:meth:`Scheduler.fill`).
- Every state change goes through the store's ``set_state`` (the transition table in
  models.py). A request that names several downloads is checked whole before anything changes:
  one bad id or one illegal move and nothing happens (docs/PROTOCOL.md).
- A running download's state is owned by its :class:`~freight.transfer.Transfer`: the
  scheduler asks it to stop (``pause``, ``cancel``, ``shutdown``) and the transfer records the
  end state itself. Requests that stop a transfer wait (briefly) for it to end, so that the
  reply describes what is stored.
- On start, downloads left ``active`` by a previous daemon (a crash, a shutdown) run again
  first; ``queued`` and ``paused`` stay as they were.

Threads: everything here runs on the daemon's event loop except ``Transfer.run``, which runs
on a thread of :class:`~freight.daemon.threads.TransferThreads`; its callbacks hop back with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from freight import config
from freight.daemon.events import Hub
from freight.daemon.threads import TransferThreads
from freight.engine import files, limits
from freight.errors import FreightError, IllegalTransition, InputError
from freight.headers import split_headers
from freight.models import Download, DownloadState
from freight.store import Store

log = logging.getLogger(__name__)

S = DownloadState
STOP_WAIT = 10.0  # seconds a pause/cancel/remove waits for a transfer to end


class TransferLike(Protocol):
    def run(self) -> Download: ...
    def stop(self, reason: Any) -> None: ...
    def progress(self) -> Any: ...
    def set_limit(self, bytes_per_second: int | None) -> None: ...


TransferFactory = Callable[..., TransferLike]


def _default_factory(*args: Any, **kwargs: Any) -> TransferLike:
    from freight.engine.transfer import Transfer

    return Transfer(*args, **kwargs)


@dataclass
class _Running:
    transfer: TransferLike
    done: asyncio.Future[Download]
    stop_reason: str | None = None
    requeue: bool = False  # resumed while a pause was on its way: queue it again at the end
    remove_file: bool = False
    waiters: list[Callable[[], None]] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        store: Store,
        hub: Hub,
        *,
        transfer_factory: TransferFactory | None = None,
        default_dir: Callable[[], str] = config.default_download_dir,
    ) -> None:
        self.store = store
        self.hub = hub
        self._factory = transfer_factory or _default_factory
        self._default_dir = default_dir
        self.running: dict[int, _Running] = {}
        self._states: dict[int, DownloadState] = {}  # last state published per running id
        self._threads = TransferThreads()
        settings = store.settings()
        self.limiter = limits.RateLimiter(settings["global_limit"])
        self.host_caps = limits.HostCaps(settings["max_host_connections"])
        self.accepting = True
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what a previous daemon left active, then fill free slots from the queue."""
        self._loop = asyncio.get_running_loop()
        max_active = self.store.settings()["max_active"]
        active, _ = self.store.list([S.ACTIVE])
        for n, download in enumerate(active):
            if n < max_active:
                log.info("resuming download %s (%s)", download.id, download.name or download.url)
                self._launch(download)
            else:
                # More were active than may run now (max_active was lowered): queue the rest.
                self.store.set_state(download.id, S.QUEUED)
        self.fill()
        self.hub.start_progress(self.progress_rows)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop taking work; stop every transfer with "shutdown" (they stay active and
        checkpoint); wait up to ``timeout`` seconds for them to end."""
        self.accepting = False
        await self.hub.stop()
        for run in self.running.values():
            run.stop_reason = "shutdown"
            run.transfer.stop("shutdown")
        pending = [r.done for r in self.running.values()]
        if pending:
            done, not_done = await asyncio.wait(pending, timeout=timeout)
            if not_done:
                log.warning("%d transfers did not stop within %.0f s", len(not_done), timeout)

    # -- the queue -------------------------------------------------------------------------

    def fill(self) -> None:
        """Start queued downloads, in position order, until max_active run."""
        if not self.accepting or self._loop is None:
            return
        free = self.store.settings()["max_active"] - len(self.running)
        if free <= 0:
            return
        for download in self.store.next_queued(free):
            try:
                download = self.store.set_state(download.id, S.ACTIVE)
            except FreightError as exc:  # changed under us; the next fill will see it
                log.warning("cannot start download %s: %s", download.id, exc)
                continue
            self._publish_state(download)
            self._launch(download)

    def _launch(self, download: Download) -> None:
        assert self._loop is not None
        loop = self._loop
        engine = config.EngineSettings.from_settings(
            self.store.settings(), connections=download.connections
        )
        transfer = self._factory(
            self.store,
            download.id,
            engine,
            global_limiter=self.limiter,
            host_caps=self.host_caps,
            on_change=self._on_change_threadsafe,
        )
        done: asyncio.Future[Download] = loop.create_future()
        run = _Running(transfer, done)
        self.running[download.id] = run
        self._states[download.id] = download.state

        def body() -> None:
            try:
                outcome: Download | BaseException = transfer.run()
            except BaseException as exc:  # a bug in the engine; keep the daemon up
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop closed: the daemon is gone
                loop.call_soon_threadsafe(self._finished, download.id, outcome)

        self._threads.run(f"transfer-{download.id}", body)

    def _on_change_threadsafe(self, download: Download) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_change, download)

    def _on_change(self, download: Download) -> None:
        if self._states.get(download.id) != download.state:
            self._publish_state(download)
        else:
            self.hub.publish("download.changed", {"download": self.public(download)})

    def _finished(self, download_id: int, outcome: Download | BaseException) -> None:
        run = self.running.pop(download_id)
        self._states.pop(download_id, None)
        try:
            download = self.store.get(download_id)
        except FreightError:
            download = None
        if isinstance(outcome, BaseException):
            log.error("download %s: transfer crashed", download_id, exc_info=outcome)
            if download is not None and download.state == S.ACTIVE and run.stop_reason is None:
                download = self.store.set_state(
                    download_id, S.FAILED, error=f"internal error: {outcome!r}",
                    error_kind="internal",
                )
                self._publish_state(download)
        if download is not None and run.requeue and download.state == S.PAUSED:
            download = self.store.set_state(download_id, S.QUEUED)
            self._publish_state(download)
        if not run.done.done():
            run.done.set_result(download)  # type: ignore[arg-type]
        self.fill()

    async def _stop(self, download_id: int, reason: str) -> Download | None:
        run = self.running.get(download_id)
        if run is None:
            return None
        run.stop_reason = reason
        run.requeue = False
        run.transfer.stop(reason)
        try:
            return await asyncio.wait_for(asyncio.shield(run.done), STOP_WAIT)
        except TimeoutError:
            log.warning("download %s did not stop within %.0f s", download_id, STOP_WAIT)
            return None

    # -- views -----------------------------------------------------------------------------

    def public(self, download: Download) -> dict[str, Any]:
        """The download as the API shows it, with live progress while it runs."""
        out = download.public()
        out["speed"] = 0
        out["eta"] = None
        run = self.running.get(download.id)
        if run is not None:
            p = run.transfer.progress()
            out.update(
                done=max(download.done, p.done), size=p.size if p.size is not None else
                download.size, speed=round(p.speed), eta=_round(p.eta),
                connections=p.connections,
            )
        return out

    def progress_rows(self) -> list[dict[str, Any]]:
        rows = []
        for download_id, run in list(self.running.items()):
            p = run.transfer.progress()
            rows.append(
                {"id": download_id, "done": p.done, "size": p.size, "speed": round(p.speed),
                 "eta": _round(p.eta), "connections": p.connections}
            )
        return rows

    def speed(self) -> int:
        return sum(round(run.transfer.progress().speed) for run in self.running.values())

    def get(self, download_id: int) -> dict[str, Any]:
        return self.public(self.store.get(download_id))

    def list(
        self, states: list[str] | None = None, offset: int = 0, limit: int = 500
    ) -> dict[str, Any]:
        rows, total = self.store.list(
            [S(s) for s in states] if states else None, offset=offset, limit=limit
        )
        return {"downloads": [self.public(d) for d in rows], "total": total}

    def _publish_state(self, download: Download) -> None:
        self._states[download.id] = download.state
        if download.id in self.running and download.state != S.ACTIVE:
            self._states.pop(download.id, None)
        self.hub.publish(
            "download.state",
            {
                "id": download.id,
                "state": download.state.value,
                "error": download.error,
                "error_kind": download.error_kind,
                "download": self.public(download),
            },
        )

    # -- actions ---------------------------------------------------------------------------

    def _require_accepting(self) -> None:
        if not self.accepting:
            from freight.errors import ShuttingDown

            raise ShuttingDown("the daemon is stopping")

    def add(self, params: dict[str, Any]) -> dict[str, Any]:
        self._require_accepting()
        plain, secret = split_headers(params.get("headers") or {})
        if params.get("cookies"):
            secret = {k: v for k, v in secret.items() if k.lower() != "cookie"}
            secret["Cookie"] = params["cookies"]
        if params.get("user_agent") and not any(k.lower() == "user-agent" for k in plain):
            plain["User-Agent"] = params["user_agent"]
        folder = params.get("dir") or self.store.settings()["download_dir"] or self._default_dir()
        state = S.PAUSED if params.get("paused") else S.QUEUED
        download = self.store.add(
            params["url"],
            folder,
            state=state,
            secret_headers=secret or None,
            requested_name=params.get("name"),
            referrer=params.get("referrer"),
            mime=params.get("mime"),
            headers=plain,
            connections=params.get("connections"),
            limit=params.get("limit"),
            checksum=params.get("checksum"),
            insecure=bool(params.get("insecure")),
        )
        log.info("added download %s: %s", download.id, download.url)
        self.hub.publish("download.added", {"download": self.public(download)})
        self.fill()
        return {"id": download.id}

    def _load(self, ids: Iterable[int]) -> list[Download]:
        return [self.store.get(i) for i in ids]  # NotFound before anything changes

    async def pause(self, ids: list[int]) -> list[int]:
        downloads = self._load(ids)
        for d in downloads:
            if d.state != S.PAUSED:
                _check(d, S.PAUSED)
        changed = []
        for d in downloads:
            if d.state == S.PAUSED:
                continue
            if d.id in self.running:
                await self._stop(d.id, "pause")
            else:
                self._publish_state(self.store.set_state(d.id, S.PAUSED))
            changed.append(d.id)
        self.fill()
        return changed

    def resume(self, ids: list[int]) -> list[int]:
        self._require_accepting()
        downloads = self._load(ids)
        for d in downloads:
            if d.state not in (S.QUEUED, S.ACTIVE):
                _check(d, S.QUEUED)
        changed = []
        for d in downloads:
            run = self.running.get(d.id)
            if run is not None:
                if run.stop_reason == "pause":
                    run.requeue = True
                    changed.append(d.id)
                continue
            if d.state in (S.QUEUED, S.ACTIVE):
                continue
            self._publish_state(self.store.set_state(d.id, S.QUEUED))
            changed.append(d.id)
        self.fill()
        return changed

    async def cancel(self, ids: list[int]) -> list[int]:
        downloads = self._load(ids)
        for d in downloads:
            if d.state == S.COMPLETED:
                raise IllegalTransition(
                    f"download {d.id} is completed: nothing to cancel (use remove)",
                    state=d.state.value, wanted=S.REMOVED.value, id=d.id,
                )
            if d.state != S.REMOVED:
                _check(d, S.REMOVED)
        changed = []
        for d in downloads:
            if d.state == S.REMOVED:
                continue
            if d.id in self.running:
                await self._stop(d.id, "cancel")
            else:
                files.remove_quietly(d.part_path)
                self.store.clear_progress(d.id)
                self._publish_state(self.store.set_state(d.id, S.REMOVED))
            changed.append(d.id)
        self.fill()
        return changed

    async def remove(self, ids: list[int], delete_file: bool = False) -> list[int]:
        downloads = self._load(ids)
        removed = []
        for d in downloads:
            if d.id in self.running:
                await self._stop(d.id, "cancel")
                with contextlib.suppress(FreightError):
                    d = self.store.get(d.id)
            if d.state != S.COMPLETED:
                files.remove_quietly(d.part_path)
            elif delete_file and d.path:
                try:
                    files.remove_quietly(d.path)
                except OSError as exc:
                    log.warning("cannot delete %s: %s", d.path, exc)
            with contextlib.suppress(FreightError):
                self.store.delete(d.id)
                removed.append(d.id)
                self.hub.publish("download.removed", {"id": d.id})
        self.fill()
        return removed

    async def refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        self._require_accepting()
        d = self.store.get(params["id"])
        if d.state in (S.COMPLETED, S.REMOVED):
            raise IllegalTransition(
                f"download {d.id} is {d.state.value}: there is nothing to refresh",
                state=d.state.value, wanted=S.QUEUED.value,
            )
        if d.id in self.running:
            await self._stop(d.id, "pause")
        changes: dict[str, Any] = {"url": params["url"], "final_url": None}
        if "referrer" in params:
            changes["referrer"] = params["referrer"]
        new_secret: dict[str, str] | None = None
        if "headers" in params or "cookies" in params:
            plain, secret = split_headers(params.get("headers") or {})
            if params.get("cookies"):
                secret["Cookie"] = params["cookies"]
            changes["headers"] = plain
            new_secret = secret
        self.store.update(d.id, **changes)
        if new_secret is not None:
            self.store.set_secret_headers(d.id, new_secret or None)
        d = self.store.get(d.id)
        if d.state != S.QUEUED:
            d = self.store.set_state(d.id, S.QUEUED)
        log.info("download %s refreshed with a new link", d.id)
        self._publish_state(d)
        self.fill()
        return {"id": d.id}

    def move(self, download_id: int, to: str) -> dict[str, Any]:
        position = self.store.move(download_id, to)
        self.hub.publish("download.changed", {"download": self.get(download_id)})
        return {"position": position}

    def set_limit(self, download_id: int, limit: int | None) -> None:
        d = self.store.update(download_id, limit=limit)
        run = self.running.get(download_id)
        if run is not None:
            run.transfer.set_limit(limit)
        self.hub.publish("download.changed", {"download": self.public(d)})

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Make changed settings take effect now (``port`` waits for the next start)."""
        self.limiter.set_rate(settings["global_limit"])
        if self.host_caps.default != settings["max_host_connections"]:
            self.host_caps.set_default(settings["max_host_connections"])
        self.fill()

    async def pause_all(self) -> list[int]:
        rows, _ = self.store.list([S.ACTIVE, S.QUEUED])
        return await self.pause([d.id for d in rows]) if rows else []

    def resume_all(self) -> list[int]:
        rows, _ = self.store.list([S.PAUSED])
        return self.resume([d.id for d in rows]) if rows else []

    def open(self, download_id: int, reveal: bool = False) -> None:
        d = self.store.get(download_id)
        target = d.dir if reveal else d.path
        if d.state != S.COMPLETED and not reveal:
            raise InputError(f"download {d.id} is {d.state.value}: there is no file to open yet")
        if not target or not os.path.exists(target):
            raise InputError(f"{target or 'the file'} does not exist (moved or deleted?)")
        open_path(target)


def _check(download: Download, new: DownloadState) -> None:
    from freight.models import check_transition

    try:
        check_transition(download.state, new)
    except IllegalTransition as exc:
        exc.data["id"] = download.id
        exc.message = f"download {download.id}: {exc.message}"
        exc.args = (exc.message,)
        raise


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def open_path(path: str) -> None:
    """Open a file or folder with the desktop's handler, detached from the daemon."""
    import shutil
    import subprocess
    import sys

    if sys.platform == "darwin":
        cmd = ["open", path]
    elif sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    else:
        opener = shutil.which("xdg-open")
        if opener is None:
            raise InputError("no xdg-open here to open files with")
        cmd = [opener, path]
    subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
