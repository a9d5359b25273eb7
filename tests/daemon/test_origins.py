"""The extension's own origins, read from extension/ids.json in the source tree."""

from __future__ import annotations

import json
from pathlib import Path

from freight.daemon.origins import IDS_FILE, extension_origins

ROOT = Path(__file__).resolve().parents[2]


def test_the_ids_file_is_the_source_trees() -> None:
    assert IDS_FILE == ROOT / "extension" / "ids.json"
    chromium = json.loads(IDS_FILE.read_text())["chromium"]
    assert f"chrome-extension://{chromium}" in extension_origins()


def test_only_well_formed_ids_become_origins(tmp_path: Path) -> None:
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"chromium": "not-an-id", "gecko": "freight@example.org"}))
    assert extension_origins(ids) == set()
    ids.write_text(json.dumps({"chromium": "a" * 32,
                               "gecko": "{12345678-1234-5678-1234-567812345678}"}))
    assert extension_origins(ids) == {
        "chrome-extension://" + "a" * 32,
        "moz-extension://12345678-1234-5678-1234-567812345678",
    }
    assert extension_origins(tmp_path / "missing.json") == set()
