"""The downloads running now, and what the clients see of them: one registry, its owner the
scheduler (daemon/scheduler.py), read on the loop only.

Each running download has a transfer (a thread's :class:`~freight.engine.transfer.Transfer`
or the loop's :class:`~freight.engine.quick.QuickTransfer`) whose counters are sampled here —
for the API's rows (:meth:`RunningTransfers.public`), the progress events and the total
speed — never an event per chunk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from freight.models import Download

log = logging.getLogger("freight.daemon.scheduler")

STOP_WAIT = 10.0  # seconds a pause/cancel/remove waits for a transfer to end


class TransferLike(Protocol):
    def stop(self, reason: Any) -> None: ...
    def progress(self) -> Any: ...
    def set_limit(self, bytes_per_second: int | None) -> None: ...


#: Called as ``factory(store, download_id, engine_settings, *, keeper, global_limiter,
#: host_caps)``, like :class:`~freight.engine.transfer.Transfer`; its ``run()`` is called
#: on a thread.
TransferFactory = Callable[..., Any]


@dataclass
class Running:
    transfer: TransferLike
    done: asyncio.Future[Download]
    stop_reason: str | None = None
    requeue: bool = False  # resumed while a pause was on its way: queue it again at the end


class RunningTransfers:
    """id → :class:`Running`, in the order they started."""

    def __init__(self) -> None:
        self._runs: dict[int, Running] = {}

    def __contains__(self, download_id: object) -> bool:
        return download_id in self._runs

    def __iter__(self) -> Iterator[Running]:
        return iter(list(self._runs.values()))

    def ids(self) -> list[int]:
        return list(self._runs)

    def add(self, download_id: int, run: Running) -> None:
        self._runs[download_id] = run

    def get(self, download_id: int) -> Running | None:
        return self._runs.get(download_id)

    def pop(self, download_id: int) -> Running:
        return self._runs.pop(download_id)

    async def stop(self, download_id: int, reason: str) -> Download | None:
        """Ask a running transfer to stop ("pause", "cancel") and wait up to STOP_WAIT for
        it to end; the download as stored then, or None when none ran or it did not end."""
        run = self._runs.get(download_id)
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

    def requeue_if_pausing(self, download_id: int) -> bool:
        """A resume while a pause is on its way: queue the download again once its
        transfer has ended paused. Whether a pause was on its way."""
        run = self._runs.get(download_id)
        if run is None or run.stop_reason != "pause":
            return False
        run.requeue = True
        return True

    def set_limit(self, download_id: int, limit: int | None) -> None:
        """Apply a download's speed limit to its running transfer, if one runs."""
        run = self._runs.get(download_id)
        if run is not None:
            run.transfer.set_limit(limit)

    def public(self, download: Download) -> dict[str, Any]:
        """The download as the API shows it, with live progress while it runs."""
        out = download.public()
        out["speed"] = 0
        out["eta"] = None
        run = self._runs.get(download.id)
        if run is not None:
            p = run.transfer.progress()
            out.update(
                done=max(download.done, p.done), size=p.size if p.size is not None else
                download.size, speed=round(p.speed), eta=_round(p.eta),
                connections=p.connections,
            )
        return out

    def progress_rows(self) -> list[dict[str, Any]]:
        """Live progress of every running transfer, in the order they started."""
        rows = []
        for download_id, run in list(self._runs.items()):
            p = run.transfer.progress()
            rows.append(
                {"id": download_id, "done": p.done, "size": p.size, "speed": round(p.speed),
                 "eta": _round(p.eta), "connections": p.connections}
            )
        return rows

    def speed(self) -> int:
        return sum(round(run.transfer.progress().speed) for run in self._runs.values())


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
