"""Finding node for the tests that run the extension's JavaScript.

Locally a missing node skips those tests with the command that installs it; in CI (CI=true)
it fails them, since .ci/run installs the nodejs package: no test is skipped in CI.
"""

from __future__ import annotations

import os
import shutil

import pytest


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing; .ci/run installs the nodejs package")
        pytest.skip("node is not installed (apt-get install nodejs)")
    return node
