"""What follows a download's end: forgetting the completed ones (``clear``) and starting a
failed or cancelled one again from zero (``restart``; docs/PROTOCOL.md "Restart"). The same
rules as :mod:`freight.daemon.actions`: every move through the scheduler's keeper, a fill after
whatever frees or fills a slot."""

from __future__ import annotations

import logging
from typing import Any

from freight.daemon.actions import check_move
from freight.daemon.scheduler import Scheduler
from freight.engine import files
from freight.errors import IllegalTransition
from freight.models import Download, DownloadState

log = logging.getLogger("freight.daemon.actions")

S = DownloadState


class Afterwards:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.store = scheduler.store
        self.keeper = scheduler.keeper

    def clear(self) -> list[int]:
        """Forget every completed download (Store.clear_completed: their files stay, failed
        and cancelled records stay); each one forgotten is announced as ``download.removed``."""
        ids = list(self.store.clear_completed())
        for download_id in ids:
            self.scheduler.hub.publish("download.removed", {"id": download_id})
        if ids:
            log.info("cleared %d completed downloads", len(ids))
        return ids

    def restart(self, download_id: int, again: bool = False) -> dict[str, Any]:
        """A failed or cancelled download back in the queue from byte zero, with its URL,
        folder and headers; a completed one only with ``again``, as a new download (a new
        id and, since a name is never taken twice, a new file beside the first)."""
        self.scheduler.require_accepting()
        d = self.store.get(download_id)
        if d.state == S.COMPLETED:
            if not again:
                raise IllegalTransition(
                    f"download {d.id} is completed: restart with again (freight restart "
                    f"--again {d.id}) to download it again as a new copy",
                    state=d.state.value, wanted=S.QUEUED.value, id=d.id)
            return self._again(d)
        if d.state not in (S.FAILED, S.NEEDS_REFRESH, S.REMOVED):
            raise IllegalTransition(
                f"download {d.id} is {d.state.value}: only a failed or cancelled download "
                "restarts (resume continues a paused one)",
                state=d.state.value, wanted=S.QUEUED.value, id=d.id)
        check_move(d, S.QUEUED)
        files.remove_quietly(d.part_path)
        # From zero, as if new: the name is chosen again by the next probe (the old .part
        # that held it is gone), no validator or redirect target of the old attempt is kept.
        self.store.clear_progress(
            d.id, name=None, resumable=False, etag=None, last_modified=None, final_url=None,
            finished_at=None)
        moved = self.keeper.move(d.id, S.QUEUED)
        log.info("restarted download %s from zero: %s", d.id, d.url)
        self.scheduler.fill()
        return {"id": moved.id, "state": moved.state.value}

    def _again(self, d: Download) -> dict[str, Any]:
        copy = self.store.add(
            url=d.url, dir=d.dir, secret_headers=self.store.secret_headers(d.id) or None,
            requested_name=d.requested_name, referrer=d.referrer, mime=d.mime,
            headers=d.headers, connections=d.connections, limit=d.limit, checksum=d.checksum,
            insecure=d.insecure)
        log.info("download %s again as download %s: %s", d.id, copy.id, copy.url)
        if self.scheduler.hub.wanted("download.added"):
            self.scheduler.hub.publish(
                "download.added", {"download": self.scheduler.running.public(copy)})
        self.scheduler.added(copy)
        return {"id": copy.id, "state": copy.state.value}
