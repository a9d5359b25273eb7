"""Run the extension's pure-logic unit tests (``*.test.mjs``) with ``node --test``."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nodejs import node_binary

HERE = Path(__file__).parent


def test_node_unit_tests_pass() -> None:
    node = node_binary()
    files = sorted(str(p) for p in HERE.glob("*.test.mjs"))
    assert files, "no *.test.mjs files found"
    proc = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=120, cwd=HERE
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    # A run that silently found no tests must not pass.
    assert "# fail 0" in proc.stdout
    assert "# pass 0" not in proc.stdout
