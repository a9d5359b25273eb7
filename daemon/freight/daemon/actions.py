"""The user's actions on downloads: add, list, pause, resume, cancel, remove, refresh, ...

Each is what one API method (docs/PROTOCOL.md "Methods") does to the store and the queue,
on the daemon's loop. Rules they keep:

- A request that names several downloads is checked whole before anything changes: one bad
  id or one illegal move and nothing happens (docs/PROTOCOL.md).
- Every state move goes through the scheduler's keeper (:attr:`Scheduler.keeper`), which
  checks the transition table and publishes the event; a download that runs is stopped
  through :meth:`Scheduler.stop` instead, and its transfer records the end state itself.
- Whatever frees or fills a slot ends with :meth:`Scheduler.fill`.
- URL userinfo leaves the URL here, where it enters (``add``, ``refresh``): it is stored
  sealed as the download's ``Authorization: Basic`` (freight.urls.split_credentials), unless
  the same call gives an Authorization header, which wins. Nothing stored, returned or logged
  then holds the password; the engine keeps the header to the download's first origin.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from freight import config
from freight.daemon import duplicates
from freight.daemon.refresh import Refresh
from freight.daemon.scheduler import Scheduler
from freight.engine import files
from freight.errors import FreightError, IllegalTransition, InputError
from freight.headers import split_headers, with_basic
from freight.models import Download, DownloadState, check_transition
from freight.urls import split_credentials

log = logging.getLogger(__name__)

S = DownloadState


class Actions:
    def __init__(
        self,
        scheduler: Scheduler,
        *,
        default_dir: Callable[[], str] = config.default_download_dir,
    ) -> None:
        self.scheduler = scheduler
        self.store = scheduler.store
        self.keeper = scheduler.keeper
        self._default_dir = default_dir

    # -- reading ---------------------------------------------------------------------------

    def get(self, download_id: int) -> dict[str, Any]:
        return self.scheduler.running.public(self.store.get(download_id))

    def states(self, ids: list[int]) -> dict[str, Any]:
        """State and error kind of each of ``ids`` (keys: the ids as JSON object keys, text),
        and the ids that name no download. The store's word, as ``get`` gives it: a
        download's state changes only through the store."""
        found = self.store.states_of(ids)
        return {
            "states": {str(i): {"state": state, "error_kind": kind}
                       for i, (state, kind) in found.items()},
            "unknown": [i for i in ids if i not in found],
        }

    def list_downloads(
        self, states: Iterable[str] | None = None, offset: int = 0, limit: int = 500
    ) -> dict[str, Any]:
        rows, total = self.store.list(
            [S(s) for s in states] if states else None, offset=offset, limit=limit
        )
        return {"downloads": [self.scheduler.running.public(d) for d in rows], "total": total}

    def _load(self, ids: Iterable[int]) -> list[Download]:
        return [self.store.get(i) for i in ids]  # NotFound before anything changes

    # -- changing --------------------------------------------------------------------------

    def add(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue one download, or answer with the one it would repeat (duplicates.py) unless
        ``again``: its id, as an added one's (a client that knows no duplicates still gets
        a download it can follow), and ``duplicate`` saying what it is."""
        self.scheduler.require_accepting()
        new = self._new_download(params, self._folder(params))
        if not params.get("again"):
            found = self._duplicates([(new["url"], new["size"])])[0]
            if found is not None:
                log.info("not added again: %s is download %s (%s)", new["url"], found.id,
                         found.state.value)
                return {"id": found.id, "duplicate": duplicates.answer(found)}
        download = self.store.add(**new)
        log.info("added download %s: %s", download.id, download.url)
        if self.scheduler.hub.wanted("download.added"):
            self.scheduler.hub.publish(
                "download.added", {"download": self.scheduler.running.public(download)}
            )
        self.scheduler.added(download)
        return {"id": download.id}

    def add_many(self, params: dict[str, Any]) -> dict[str, Any]:
        """``add`` for each of ``urls`` with the same other params, in one transaction (the
        protocol checked every URL first: all are added or none)."""
        self.scheduler.require_accepting()
        shared = {k: v for k, v in params.items() if k != "urls"}
        folder = self._folder(shared)
        rows = [self._new_download({**shared, "url": url}, folder) for url in params["urls"]]
        found: list[duplicates.Candidate | None] = [None] * len(rows)
        if not params.get("again"):
            found = self._duplicates([(row["url"], None) for row in rows])
        downloads = self.store.add_many(
            [row for row, old in zip(rows, found, strict=True) if old is None])
        added = iter(downloads)
        result: dict[str, Any] = {
            "ids": [next(added).id if old is None else old.id for old in found]}
        repeats = [{"index": n, **duplicates.answer(old)}
                   for n, old in enumerate(found) if old is not None]
        if repeats:
            result["duplicates"] = repeats
            log.info("not added again: %d of %d URLs", len(repeats), len(rows))
        if not downloads:
            return result
        log.info("added %d downloads, ids %s to %s", len(downloads), downloads[0].id,
                 downloads[-1].id)
        # Every download.added first, then the scheduler: a download it starts at once has
        # its added event out before its state event, as with one add. Their rows are built
        # only when someone hears them (`freight add` then `freight wait` does not).
        heard = self.scheduler.hub.wanted("download.added")
        for download in downloads:
            log.debug("added download %s: %s", download.id, download.url)
            if heard:
                self.scheduler.hub.publish(
                    "download.added", {"download": self.scheduler.running.public(download)})
        for download in downloads:
            self.scheduler.added(download)
        return result

    def _duplicates(
        self, requests: list[tuple[str, int | None]]
    ) -> list[duplicates.Candidate | None]:
        """For each (url, size_hint), the existing download it would repeat, or None."""
        by_address = self.store.duplicate_candidates([url for url, _ in requests])
        candidates = {
            address: [duplicates.Candidate(
                id=d.id, url=d.url, state=d.state, name=d.name, path=d.path, size=d.size,
                file_present=d.state == S.COMPLETED and files.still_there(d.path, d.size),
            ) for d in rows]
            for address, rows in by_address.items()
        }
        return [duplicates.duplicate_of(duplicates.Request(url, size_hint),
                                        candidates.get(duplicates.address(url), []))
                for url, size_hint in requests]

    def _folder(self, params: dict[str, Any]) -> str:
        return str(
            params.get("dir") or self.store.settings()["download_dir"] or self._default_dir()
        )

    def _new_download(self, params: dict[str, Any], folder: str) -> dict[str, Any]:
        """:meth:`Store.add`'s arguments for one checked ``add`` request."""
        url, basic = split_credentials(params["url"])
        plain, secret = split_headers(params.get("headers") or {})
        if params.get("cookies"):
            secret = {k: v for k, v in secret.items() if k.lower() != "cookie"}
            secret["Cookie"] = params["cookies"]
        secret = with_basic(secret, basic)
        if params.get("user_agent") and not any(k.lower() == "user-agent" for k in plain):
            plain["User-Agent"] = params["user_agent"]
        return {
            "url": url,
            "dir": folder,
            "state": S.PAUSED if params.get("paused") else S.QUEUED,
            "secret_headers": secret or None,
            "requested_name": params.get("name"),
            "referrer": params.get("referrer"),
            "mime": params.get("mime"),
            # The browser's size lets a small file start beside max_active (slots.py); the
            # probe's answer replaces it before a byte is written.
            "size": params.get("size_hint"),
            "headers": plain,
            "connections": params.get("connections"),
            "limit": params.get("limit"),
            "checksum": params.get("checksum"),
            "insecure": bool(params.get("insecure")),
        }

    async def pause(self, ids: Iterable[int]) -> list[int]:
        downloads = self._load(ids)
        for d in downloads:
            if d.state != S.PAUSED:
                check_move(d, S.PAUSED)
        changed = []
        for d in downloads:
            if d.state == S.PAUSED:
                continue
            if self.scheduler.is_running(d.id):
                await self.scheduler.stop(d.id, "pause")
            else:
                self.keeper.move(d.id, S.PAUSED)
            changed.append(d.id)
        self.scheduler.fill()
        return changed

    def resume(self, ids: Iterable[int]) -> list[int]:
        self.scheduler.require_accepting()
        downloads = self._load(ids)
        for d in downloads:
            if d.state == S.REMOVED:  # the table allows removed → queued for restart only
                raise IllegalTransition(
                    f"download {d.id} is cancelled: nothing to resume (restart it)",
                    state=d.state.value, wanted=S.QUEUED.value, id=d.id)
            if d.state not in (S.QUEUED, S.ACTIVE):
                check_move(d, S.QUEUED)
        changed = []
        for d in downloads:
            if self.scheduler.is_running(d.id):
                if self.scheduler.requeue_if_pausing(d.id):
                    changed.append(d.id)
                continue
            if d.state in (S.QUEUED, S.ACTIVE):
                continue
            self.keeper.move(d.id, S.QUEUED)
            changed.append(d.id)
        self.scheduler.fill()
        return changed

    async def cancel(self, ids: Iterable[int]) -> list[int]:
        downloads = self._load(ids)
        for d in downloads:
            if d.state == S.COMPLETED:
                raise IllegalTransition(
                    f"download {d.id} is completed: nothing to cancel (use remove)",
                    state=d.state.value, wanted=S.REMOVED.value, id=d.id,
                )
            if d.state != S.REMOVED:
                check_move(d, S.REMOVED)
        changed = []
        for d in downloads:
            if d.state == S.REMOVED:
                continue
            if self.scheduler.is_running(d.id):
                await self.scheduler.stop(d.id, "cancel")
            else:
                files.remove_quietly(d.part_path)
                self.store.clear_progress(d.id)
                self.keeper.move(d.id, S.REMOVED)
            changed.append(d.id)
        self.scheduler.fill()
        return changed

    async def remove(self, ids: Iterable[int], delete_file: bool = False) -> list[int]:
        downloads = self._load(ids)
        removed = []
        for d in downloads:
            if self.scheduler.is_running(d.id):
                await self.scheduler.stop(d.id, "cancel")
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
                self.scheduler.hub.publish("download.removed", {"id": d.id})
        self.scheduler.fill()
        return removed

    async def refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        """A fresh link, taken only from the download's site and for its file (refresh.py)."""
        return await Refresh(self.scheduler, params).run()

    def move(self, download_id: int, to: str) -> dict[str, Any]:
        position = self.store.move(download_id, to)
        self.keeper.changed(self.store.get(download_id))
        return {"position": position}

    def set_limit(self, download_id: int, limit: int | None) -> None:
        self.keeper.update(download_id, limit=limit)
        self.scheduler.set_transfer_limit(download_id, limit)

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


def check_move(download: Download, new: DownloadState) -> None:
    """The transition table's check, its error naming the download."""
    try:
        check_transition(download.state, new)
    except IllegalTransition as exc:
        exc.data["id"] = download.id
        exc.message = f"download {download.id}: {exc.message}"
        exc.args = (exc.message,)
        raise


def open_path(path: str) -> None:
    """Open a file or folder with the desktop's handler, detached from the daemon.

    The opener runs in its own session (a signal to the daemon's group never reaches it) and
    a thread waits for it: a child that exits and is never waited for stays a defunct entry
    in the process table for as long as the daemon runs (wait(2)). Its exit status is only
    logged: xdg-open returns at once for most desktops, and its handler's failures are not
    the daemon's to report.
    """
    import shutil
    import subprocess
    import sys
    import threading

    if sys.platform == "darwin":
        cmd = ["open", path]
    elif sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    else:
        opener = shutil.which("xdg-open")
        if opener is None:
            raise InputError(
                "cannot open files here: xdg-open is not installed (it comes with xdg-utils)"
            )
        cmd = [opener, path]
    try:
        child = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"cannot open files here: {cmd[0]} does not start ({reason})") from None

    def reap() -> None:
        code = child.wait()
        if code:
            log.info("%s exited with %s for %s", os.path.basename(cmd[0]), code, path)

    threading.Thread(target=reap, name=f"reap-opener-{child.pid}", daemon=True).start()
