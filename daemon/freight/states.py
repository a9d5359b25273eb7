"""The one owner of state changes: every move of a download's state, from any thread, goes
through :meth:`StateKeeper.move` (or :meth:`StateKeeper.complete`), which applies the
transition table (:data:`freight.models.TRANSITIONS`, checked in the store's one statement),
writes the store and then tells the listener, in that order.

The engine's :class:`~freight.engine.transfer.Transfer`, the daemon's scheduler and
``freight get`` all hold a keeper; the daemon's listener turns a move into a
``download.state`` event and any other change of a row into ``download.changed``
(docs/PROTOCOL.md "Events"), so that nobody has to guess which of the two happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from freight.errors import FreightError
from freight.models import Download, DownloadState
from freight.store import QueueReader, Store

log = logging.getLogger(__name__)

#: Told of every change after it is stored: the row as stored, and whether its state moved.
Listener = Callable[[Download, bool], None]


class StateKeeper:
    """Writes state moves and row changes to the store, then tells one listener.

    Thread-safe: the store serialises its writes; the listener is called on the caller's
    thread (the daemon's hops to its loop itself).
    """

    def __init__(self, store: Store, listener: Listener | None = None) -> None:
        self.store = store
        self._listener = listener

    def move(
        self,
        download_id: int,
        new: DownloadState,
        *,
        error: str | None = None,
        error_kind: str | None = None,
    ) -> Download:
        """Move a download to ``new``; raises IllegalTransition, NotFound. A move to the
        state it is already in is stored (its error fields may change) and reported as a
        state event all the same."""
        download = self.store.set_state(download_id, new, error=error, error_kind=error_kind)
        self._tell(download, True)
        return download

    def start_queued(self, choose: Callable[[QueueReader], Iterable[int]]) -> list[Download]:
        """Move the queued downloads ``choose`` picks among those it read to ``active``, in
        one transaction (Store.start_queued: the transition table's queued → active); each
        one moved is reported, once it is stored."""
        started = self.store.start_queued(choose)
        for download in started:
            self._tell(download, True)
        return started

    def complete(self, download_id: int, name: str, size: int) -> Download:
        """Record a finished download (final name and size, no progress) as ``completed``."""
        download = self.store.complete(download_id, name, size)
        self._tell(download, True)
        return download

    def complete_many(
        self, finished: list[tuple[int, str, int, dict[str, Any]]]
    ) -> list[Download | FreightError]:
        """:meth:`complete` for many downloads in one transaction (Store.complete_many: id,
        name, size and other fields to record with it); each recorded one is reported, one
        that could not be is answered with its error."""
        answers = self.store.complete_many(finished)
        for answer in answers:
            if isinstance(answer, Download):
                self._tell(answer, True)
        return answers

    def update(self, download_id: int, **fields: Any) -> Download:
        """Change fields other than the state (name, size, URL, ...) and report the row."""
        download = self.store.update(download_id, **fields)
        self._tell(download, False)
        return download

    def changed(self, download: Download) -> None:
        """Report a row that changed through another store call (progress, secrets)."""
        self._tell(download, False)

    def _tell(self, download: Download, moved: bool) -> None:
        if self._listener is None:
            return
        try:
            self._listener(download, moved)
        except Exception:  # a listener's bug must not undo or hide a stored change
            log.exception("state listener failed for download %s", download.id)
