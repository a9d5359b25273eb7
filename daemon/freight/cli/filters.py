"""Which downloads a listing shows: the filter flags `freight ls` and `freight watch` share.

``--active``, ``--queued``, ``--paused``, ``--failed`` and ``--state S`` (repeatable) pick
states (together: any of them); ``--limit N`` keeps the first N rows of the listing's own
order. One implementation, so that the same flags mean the same thing in both commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from freight.models import DownloadState

S = DownloadState

#: The shorthand flags and the state each stands for.
SHORTHANDS = {
    "active": S.ACTIVE.value,
    "queued": S.QUEUED.value,
    "paused": S.PAUSED.value,
    "failed": S.FAILED.value,
}


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    for name, state in SHORTHANDS.items():
        group.add_argument(f"--{name}", action="store_true", help=f"only {state} downloads")
    group.add_argument("--state", action="append", choices=[s.value for s in S],
                       help="only downloads in this state (repeatable)")
    group.add_argument("--limit", type=positive, metavar="N", help="at most N rows")


@dataclass(frozen=True)
class Filter:
    states: frozenset[str] | None = None  # None: every state
    limit: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Filter:
        picked = {state for name, state in SHORTHANDS.items() if getattr(args, name, False)}
        picked.update(getattr(args, "state", None) or ())
        return cls(frozenset(picked) if picked else None, getattr(args, "limit", None))

    def state_list(self) -> list[str] | None:
        """The states to ask the daemon's `list` for (sorted, for a stable request)."""
        return sorted(self.states) if self.states else None

    def matches(self, download: dict[str, Any]) -> bool:
        return self.states is None or download.get("state") in self.states

    def select(self, downloads: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The matching downloads in their given order, cut at the limit."""
        rows = [d for d in downloads if self.matches(d)]
        return rows if self.limit is None else rows[: self.limit]


def list_all(client: Any, states: list[str] | None = None) -> list[dict[str, Any]]:
    """Every download the daemon has (in those states), page by page."""
    rows: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"offset": len(rows), "limit": 1000}
        if states:
            params["states"] = states
        page = client.call("list", **params)
        rows.extend(page["downloads"])
        if not page["downloads"] or len(rows) >= page["total"]:
            return rows
