"""The ``refresh`` action: a fresh link for a download, checked before it is taken.

freight.daemon.freshlink decides (sans-I/O); this carries it out, on the daemon's loop:

1. The site is checked first: no request, and no cookie of the download, goes to a link
   from another site unless ``force`` says so.
2. The new link is probed off the loop (a thread: the engine's HTTP source is blocking), with
   the headers the download will send once refreshed — the cookies, headers and referrer the
   refresh gives, else the stored ones: ``GET`` with ``Range: bytes=0-0``, checked by the
   engine's own validation, tells the file's size and validators (RFC 9110 §14.2, §8.8).
3. Refused → :class:`~freight.errors.RefreshRefused` and nothing has changed. Taken → the
   download's transfer (if one runs) is stopped, the new URL stored, and the download queued;
   when nothing proves the bytes held are the new link's file, every progress record is
   forgotten first (``Store.clear_progress``, as the engine's restart does), so the next run
   starts from byte 0 and never splices.

A link taken with ``force`` from another site carries none of the old site's secret headers
(cookies, Authorization) unless the same call gives them: those were given for the old site.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from freight import config
from freight.daemon import freshlink
from freight.daemon.freshlink import Offer, Probed, Take, Verdict, Waiting
from freight.daemon.scheduler import Scheduler
from freight.engine.http.request import RangeRequest
from freight.engine.http.source import HttpSource
from freight.engine.http.validate import Validators
from freight.errors import FreightError, IllegalTransition, RefreshRefused
from freight.headers import split_headers, with_basic
from freight.models import Download, DownloadState
from freight.urls import split_credentials

log = logging.getLogger(__name__)

S = DownloadState


def waiting_of(download: Download) -> Waiting:
    urls = tuple(u for u in (download.url, download.final_url) if u)
    return Waiting(urls, download.referrer, download.size,
                   Validators(download.etag, download.last_modified))


def probe(url: str, headers: dict[str, str], settings: config.EngineSettings,
          insecure: bool) -> Probed:
    """Ask ``url`` for its first byte: its size and validators (blocking; run it off the
    loop). A link that does not answer with the file is refused."""
    source = HttpSource(settings, insecure=insecure)
    try:
        reply = source.open(RangeRequest(url, 0, 1, headers=headers))
        try:
            return Probed(reply.size, reply.validators)
        finally:
            reply.close()
    except FreightError as exc:
        raise RefreshRefused(f"the new link does not work: {exc}", why="link") from exc
    finally:
        source.close()


class Refresh:
    """One ``refresh`` call (docs/PROTOCOL.md): params as the protocol checked them."""

    def __init__(self, scheduler: Scheduler, params: dict[str, Any]) -> None:
        self.scheduler = scheduler
        self.store = scheduler.store
        self.params = params
        self.force = bool(params.get("force"))
        self.url, self.basic = split_credentials(params["url"])
        self.offer = Offer(self.url, params.get("referrer"))

    async def run(self) -> dict[str, Any]:
        self.scheduler.require_accepting()
        d = self._refreshable(self.store.get(self.params["id"]))
        elsewhere = freshlink.site_refusal(waiting_of(d), self.offer)
        if elsewhere is not None and not self.force:
            self._refuse(d, elsewhere)
        plain, secret = self._new_headers(d, keep_secrets=elsewhere is None)
        probed = None
        if d.size is not None and not self.force:
            probed = await asyncio.to_thread(
                probe, self.url, self._sent_headers(d, plain, secret),
                config.EngineSettings.from_settings(self.store.settings()), d.insecure,
            )
        verdict = freshlink.decide(waiting_of(d), self.offer, probed, force=self.force)
        if verdict.refused:
            self._refuse(d, verdict)
        if self.scheduler.is_running(d.id):
            await self.scheduler.stop(d.id, "pause")
        now = self._refreshable(self.store.get(d.id))
        if waiting_of(now) != waiting_of(d):  # it learnt something while the link was probed
            verdict = freshlink.decide(waiting_of(now), self.offer, probed, force=self.force)
            if verdict.refused:
                self._refuse(now, verdict)
        return self._take(now, verdict, plain, secret)

    def _refreshable(self, d: Download) -> Download:
        if d.state in (S.COMPLETED, S.REMOVED):
            raise IllegalTransition(
                f"download {d.id} is {d.state.value}: there is nothing to refresh",
                state=d.state.value, wanted=S.QUEUED.value,
            )
        return d

    def _refuse(self, d: Download, verdict: Verdict) -> None:
        log.warning("download %s: fresh link refused: %s", d.id, verdict.reason)
        raise RefreshRefused(f"download {d.id}: {verdict.reason}", id=d.id, why=verdict.why)

    def _new_headers(
        self, d: Download, *, keep_secrets: bool
    ) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """The plain and secret headers the refresh sets (None: the stored ones stay)."""
        plain: dict[str, str] | None = None
        secret: dict[str, str] | None = None
        if "headers" in self.params or "cookies" in self.params:
            plain, secret = split_headers(self.params.get("headers") or {})
            if self.params.get("cookies"):
                secret["Cookie"] = self.params["cookies"]
        if secret is None and not keep_secrets:
            secret = {}  # the old site's cookies and credentials are not for this one
        if self.basic:  # the fresh link's userinfo replaces a stored Authorization, not a given one
            if secret is None:
                secret = {k: v for k, v in self.store.secret_headers(d.id).items()
                          if k.lower() != "authorization"}
            secret = with_basic(secret, self.basic)
        return plain, secret

    def _sent_headers(
        self, d: Download, plain: dict[str, str] | None, secret: dict[str, str] | None
    ) -> dict[str, str]:
        """What the download's requests will carry once refreshed (engine.shared's rule)."""
        headers = dict(d.headers if plain is None else plain)
        headers.update(self.store.secret_headers(d.id) if secret is None else secret)
        referrer = self.params.get("referrer", d.referrer)
        if referrer and not any(k.lower() == "referer" for k in headers):
            headers["Referer"] = referrer
        return headers

    def _take(
        self, d: Download, verdict: Verdict, plain: dict[str, str] | None,
        secret: dict[str, str] | None,
    ) -> dict[str, Any]:
        if verdict.take is Take.RESTART:
            # Before the new URL is stored: a crash in between leaves the old link with no
            # record of its bytes, never the new link with the old bytes trusted.
            self.store.clear_progress(d.id, size=None, resumable=False, etag=None,
                                      last_modified=None)
        changes: dict[str, Any] = {"url": self.url, "final_url": None}
        if "referrer" in self.params:
            changes["referrer"] = self.params["referrer"]
        if plain is not None:
            changes["headers"] = plain
        self.store.update(d.id, **changes)
        if secret is not None:
            self.store.set_secret_headers(d.id, secret or None)
        # Queued again (a move to queued when it already is: the new link is news all the same).
        d = self.scheduler.keeper.move(d.id, S.QUEUED)
        log.info("download %s refreshed with a new link: %s", d.id, verdict.reason)
        self.scheduler.fill()
        return {"id": d.id}
