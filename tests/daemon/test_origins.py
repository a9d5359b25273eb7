"""The extension's own origins, read from the extension's ids.json (in an editable install,
the source tree's extension/ folder; tests/extension/test_wheel_install.py checks a wheel's)."""

from __future__ import annotations

import json
from pathlib import Path

from freight.daemon.origins import extension_origins
from freight.extension_files import ids_file

ROOT = Path(__file__).resolve().parents[2]


def test_the_ids_file_is_the_source_trees() -> None:
    assert ids_file() == ROOT / "extension" / "ids.json"
    chromium = json.loads(ids_file().read_text())["chromium"]
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
