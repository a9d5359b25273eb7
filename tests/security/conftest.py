"""Fixtures for the hostile-input tests: a sandbox folder and a one-call engine run.

``sandbox`` is a tmp dir holding ``downloads/`` (the chosen folder), ``freight.db`` and a few
bait files around it; ``outside_unchanged()`` proves that nothing outside ``downloads/`` was
created, changed or removed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from freight.config import EngineSettings
from freight.engine.transfer import Transfer
from freight.models import Download, DownloadState
from freight.store import Store


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under root (except ``skip``) → sha256 of its bytes."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in filenames:
            path = Path(dirpath) / name
            if path.name.startswith("freight.db"):
                continue
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Sandbox:
    root: Path
    folder: Path
    store: Store
    before: dict[str, str] = field(default_factory=dict)

    def run(self, url: str, timeout: float = 60, **settings: Any) -> Download:
        """Run one download of ``url`` into ``folder`` to its end and return it as stored."""
        download = self.store.add(url, str(self.folder), state=DownloadState.ACTIVE,
                                  requested_name=settings.pop("name", None))
        defaults: dict[str, Any] = {
            "connections": 4, "adaptive": False, "retry_base": 0.01, "retry_max": 0.05,
            "max_tries": 3, "stall_timeout": 2.0, "connect_timeout": 2.0,
            "checkpoint_interval": 0.1,
        }
        defaults.update(settings)
        transfer = Transfer(self.store, download.id, EngineSettings(**defaults))
        result: list[Download] = []
        thread = threading.Thread(target=lambda: result.append(transfer.run()), daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            transfer.stop("pause")
            thread.join(10)
            raise AssertionError(f"the download of {url} did not end within {timeout}s")
        return result[0]

    def files(self) -> list[str]:
        return sorted(os.listdir(self.folder))

    def assert_outside_unchanged(self) -> None:
        assert tree(self.root, skip=self.folder) == self.before
        # Nothing but plain files directly in the folder: no sub-folders, no links out.
        for entry in os.scandir(self.folder):
            assert entry.is_file(follow_symlinks=False), entry.path


@pytest.fixture
def sandbox(tmp_path: Path, freight_home: Path) -> Iterator[Sandbox]:
    root = tmp_path / "box"
    folder = root / "downloads"
    folder.mkdir(parents=True)
    (root / "bait.txt").write_text("must stay\n")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0\n")
    store = Store(root / "freight.db")
    box = Sandbox(root, folder, store)
    box.before = tree(root, skip=folder)
    yield box
    store.close()


Runner = Callable[..., Download]
