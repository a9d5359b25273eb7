"""Run the extension's pure-logic unit tests (``*.test.mjs``) with ``node --test``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def test_node_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing; .ci/run installs the nodejs package")
        pytest.skip("node is not installed (apt-get install nodejs)")
    files = sorted(str(p) for p in HERE.glob("*.test.mjs"))
    assert files, "no *.test.mjs files found"
    proc = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=120, cwd=HERE
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    # A run that silently found no tests must not pass.
    assert "# fail 0" in proc.stdout
    assert "# pass 0" not in proc.stdout
