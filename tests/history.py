"""A long history in a database before its daemon starts: most downloads completed, some
paused, a few failed (for the tests and benchmarks of 10,000 downloads)."""

from __future__ import annotations

from pathlib import Path

from freight import config
from freight.models import DownloadState
from freight.store import Store

#: Of every 100 downloads: 90 completed, 9 paused, 1 failed.
STATES = [DownloadState.COMPLETED] * 90 + [DownloadState.PAUSED] * 9 + [DownloadState.FAILED]


def fill_history(home: Path, count: int, folder: Path) -> dict[str, int]:
    """``count`` finished, paused and failed downloads in FREIGHT_HOME's database; returns
    how many of each state."""
    paths = config.paths_from_env({"FREIGHT_HOME": str(home)}).ensure()
    store = Store(paths.database)
    seen: dict[str, int] = {}
    for i in range(count):
        s = STATES[i % 100]
        store.add(f"http://127.0.0.1:9/f{i}.bin", str(folder), state=s, name=f"f{i}.bin",
                  size=1000 + i, done=1000 + i if s == DownloadState.COMPLETED else i)
        seen[s.value] = seen.get(s.value, 0) + 1
    store.close()
    return seen
