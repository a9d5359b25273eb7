"""Event fan-out: one bounded outbox per client, progress coalesced, state events kept.

Theory of operation::

    scheduler ──publish(event)──▶ Hub ──▶ Session.outbox (one per WebSocket client)
    Hub.progress task, every 0.25 s: source() → one download.progress for all active downloads

While nothing runs, or nobody listens for progress, the progress task sleeps until an event
(a state event is how a download starts) or a subscription wakes it: an idle daemon with
10,000 downloads does not wake at all (bench/scale.py).

A client that reads slowly must never slow the daemon (docs/PROTOCOL.md "Events"):

- ``download.progress`` is *coalesced*: an outbox holds at most one unsent progress message,
  and a newer one replaces it in place. A slow client therefore sees fewer, never stale-late,
  progress messages.
- Every other message (replies, state events) is kept. If more than ``limit`` of them pile up
  unsent, the client is hopelessly stuck: the outbox is marked overflowed and the server closes
  that connection (code 1008), rather than dropping a state event silently or growing forever.

Everything here runs on the daemon's event loop; nothing blocks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from freight import rpc
from freight.daemon import protocol as api

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25  # seconds: at most ~4 progress messages per second per client
OUTBOX_LIMIT = 10_000  # unsent must-deliver messages before a client counts as stuck


class _Slot:
    """A queued progress message that a newer one may overwrite until it is sent."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Outbox:
    def __init__(self, limit: int = OUTBOX_LIMIT) -> None:
        self._items: collections.deque[str | _Slot] = collections.deque()
        self._slot: _Slot | None = None
        self._ready = asyncio.Event()
        self._limit = limit
        self._kept = 0
        self.closed = False
        self.overflowed = False
        self.dropped = 0  # progress messages replaced before they were sent

    def __len__(self) -> int:
        return len(self._items)

    def put(self, text: str) -> None:
        """Queue a message that must arrive (a reply, a state event)."""
        if self.closed:
            return
        if self._kept >= self._limit:
            self.overflowed = True
            self.closed = True
        else:
            self._items.append(text)
            self._kept += 1
        self._ready.set()

    def put_progress(self, text: str) -> None:
        """Queue a progress message, replacing an older one that is still unsent."""
        if self.closed:
            return
        if self._slot is not None:
            self._slot.text = text
            self.dropped += 1
            return
        self._slot = _Slot(text)
        self._items.append(self._slot)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self) -> str | None:
        """The next message to send; None once the outbox is closed (or overflowed)."""
        got = await self.get_all(1)
        return None if got is None else got[0]

    async def get_all(self, limit: int = 256) -> list[str] | None:
        """Every message ready now (at most ``limit``), in order; None once closed. The
        writer sends them in one write: the events of one loop turn (a batch of completed
        downloads) are then one syscall, not one each."""
        while not self._items:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.overflowed:
            return None
        return [self._take() for _ in range(min(limit, len(self._items)))]

    def get_nowait(self) -> str | None:
        """For in-process tests and the final flush: the next message or None."""
        if not self._items or self.overflowed:
            return None
        return self._take()

    def _take(self) -> str:
        item = self._items.popleft()
        if isinstance(item, _Slot):
            self._slot = None
            return item.text
        self._kept -= 1
        return item


class Session:
    """One connected client: its outbox and the events it asked for (none until subscribe)."""

    def __init__(self, name: str = "client", limit: int = OUTBOX_LIMIT) -> None:
        self.name = name
        self.outbox = Outbox(limit)
        self.events: frozenset[str] = frozenset()
        #: False: ``download.state`` comes without its ``download`` row (``subscribe``'s
        #: ``rows``), for a client that follows states only (``freight wait``).
        self.rows = True
        #: The states whose ``download.state`` this client hears (``subscribe``'s ``states``);
        #: None: all of them.
        self.states: frozenset[str] | None = None
        #: Made by a browser (its upgrade carried an Origin: the extension): what would run
        #: a program or send completions away is not set over it (handler.set_settings).
        self.browser = False
        #: Called after each subscribe (the hub wakes its progress task).
        self.on_subscribe: Callable[[], None] = lambda: None

    def subscribe(
        self, events: list[str] | None, rows: bool = True, states: list[str] | None = None
    ) -> list[str]:
        """Replace what this client hears (a new subscription drops the old filter)."""
        self.events = frozenset(rpc.EVENTS if events is None else events)
        self.rows = rows
        self.states = None if states is None else frozenset(states)
        self.on_subscribe()
        return [e for e in rpc.EVENTS if e in self.events]

    def hears(self, event: str, state: str | None = None) -> bool:
        """Whether this client hears ``event`` (a ``download.state`` to ``state``; None: to
        some state)."""
        if event not in self.events:
            return False
        return state is None or self.states is None or state in self.states

    def send(self, text: str) -> None:
        self.outbox.put(text)


class Hub:
    """Fans events out to every subscribed session; samples progress a few times a second."""

    def __init__(self, interval: float = PROGRESS_INTERVAL) -> None:
        self.sessions: set[Session] = set()
        self._interval = interval
        self._source: Callable[[], list[dict[str, Any]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        #: Set by every event but progress and by a subscription: the progress task, asleep
        #: while there is nothing to sample or nobody to tell, looks again.
        self._wake = asyncio.Event()
        #: wanted()'s answers, asked a few times per state move, until who listens changes
        #: (a session comes or goes, subscribes again, a listener is added).
        self._wanted: dict[tuple[str, bool, str | None], bool] = {}

    def attach(self, session: Session) -> None:
        self.sessions.add(session)
        session.on_subscribe = self._subscribed
        self._wanted.clear()

    def _subscribed(self) -> None:
        self._wanted.clear()
        self._wake.set()

    def detach(self, session: Session) -> None:
        self.sessions.discard(session)
        self._wanted.clear()
        session.outbox.close()

    def listen(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """In-process listeners (the tray, tests) get every event except progress."""
        self._listeners.append(callback)
        self._wanted.clear()

    def wanted(self, event: str, *, rows: bool = False, state: str | None = None) -> bool:
        """Whether anyone would hear ``event`` now (``rows``: with its download's row;
        ``state``: a ``download.state`` to that state, else to some state): its payload, or
        the row, need not be built if not."""
        key = (event, rows, state)
        answer = self._wanted.get(key)
        if answer is None:
            answer = self._wanted[key] = (
                bool(self._listeners) and event != "download.progress"  # they get no progress
            ) or any(s.hears(event, state) and (s.rows or not rows) for s in self.sessions) or (
                # A move (without its row) is what wakes the progress task: a client that
                # hears progress only must have it published, to nobody, all the same.
                event == "download.state" and not rows and self.wanted("download.progress"))
        return answer

    def publish(self, event: str, params: dict[str, Any]) -> None:
        assert event in rpc.EVENTS, event
        text: str | None = None
        slim: str | None = None
        # A client filtered on states (`freight wait`) never costs an encoding, a queue slot
        # or a write for the moves it does not follow (queued → active).
        state = params.get("state") if event == "download.state" else None
        for session in list(self.sessions):
            if not session.hears(event, state):
                continue
            if not session.rows and event == "download.state":
                slim = slim or api.notification(
                    event, {k: v for k, v in params.items() if k != "download"})
                session.outbox.put(slim)
                continue
            text = text or api.notification(event, params)
            if event == "download.progress":
                session.outbox.put_progress(text)
            else:
                session.outbox.put(text)
        if event != "download.progress":
            self._wake.set()
            for callback in self._listeners:
                try:
                    callback(event, params)
                except Exception:
                    log.exception("event listener failed")

    # -- progress --------------------------------------------------------------------------

    def start_progress(self, source: Callable[[], list[dict[str, Any]]]) -> None:
        """Every interval, publish ``source()`` as one download.progress when not empty."""
        self._source = source
        self._task = asyncio.get_running_loop().create_task(self._progress_loop())

    async def _progress_loop(self) -> None:
        assert self._source is not None
        rows: list[dict[str, Any]] = [{}]  # unknown at the start: look once
        while True:
            if not rows or not self.wanted("download.progress"):
                # Nothing runs, or nobody listens: nothing can change until an event (a
                # download starts through a state event) or a subscription.
                await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval)
            if not self.wanted("download.progress"):
                continue
            try:
                rows = self._source()
            except Exception:
                log.exception("progress sampling failed")
                continue
            if rows:
                self.publish("download.progress", {"downloads": rows})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
