"""freight.extension_files: the one place that says where the extension lies. The wheel's
case, installed for real, is tests/extension/test_wheel_install.py; here the editable
install's, and an install that lost its extension."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from freight import extension_files

ROOT = Path(__file__).resolve().parents[2]


def test_an_editable_install_reads_the_source_trees_folder() -> None:
    # These tests run from an editable install: no packaged copy, the source tree's folder.
    assert not extension_files.PACKAGED.exists()
    assert extension_files.extension_dir() == ROOT / "extension"
    assert extension_files.manifest_file() == ROOT / "extension" / "manifest.json"
    assert extension_files.ids_file() == ROOT / "extension" / "ids.json"


def _install_with(packaged: Path, source: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`freight install` in a process whose two extension folders are `packaged`/`source`."""
    code = ("import sys; from pathlib import Path; from freight import extension_files as e;"
            f"e.PACKAGED = Path({str(packaged)!r}); e.SOURCE_TREE = Path({str(source)!r});"
            "from freight.cli.entry import main; sys.exit(main(['install', '--no-autostart']))")
    env = {**os.environ, "HOME": str(home), "FREIGHT_HOME": str(home / "freight"),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".share")}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_packaged_copy_wins_over_a_source_tree(tmp_path: Path) -> None:
    packaged = tmp_path / "site-packages" / "freight" / "extension"
    packaged.mkdir(parents=True)
    manifest = json.loads((ROOT / "extension" / "manifest.json").read_text())
    (packaged / "manifest.json").write_text(json.dumps(manifest))
    home = tmp_path / "home"
    res = _install_with(packaged, ROOT / "extension", home)
    assert res.returncode == 0, res.stderr
    assert f"the extension's folder: {packaged}\n" in res.stdout


def test_install_without_its_extension_says_so_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    res = _install_with(tmp_path / "gone", tmp_path / "also-gone", home)
    assert res.returncode == 1
    assert res.stderr == (f"freight install: the browser extension is missing from this install"
                          f" ({tmp_path / 'gone' / 'manifest.json'} does not exist);"
                          " reinstall Freight\n")
    assert list(home.iterdir()) == []
