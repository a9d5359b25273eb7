"""The extension's capture rules and the daemon's settings are one thing: rules.js reads and
writes exactly the settings freight/config.py declares, with the same defaults, and both ends
normalise a value the same way (docs/ARCHITECTURE.md "Capture rules")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from freight import config
from nodejs import node_binary

RULES_JS = Path(__file__).resolve().parents[2] / "extension" / "js" / "rules.js"

#: Values as a user may type them anywhere (options page, `freight settings`, the API).
TABLE: list[dict[str, Any]] = [
    {"capture": False},
    {"capture_min_size": 2_000_000},
    {"capture_always_types": [" .ISO ", "*.Zip", "", "iso", "Video/*"]},
    {"capture_never_types": ["EXE", ".msi", "application/X-Foo;x"]},
    {"capture_never_sites": [" Example.com ", "*.bank.test", "https://x.org/private/*", " "]},
    {"notify": False},
]


def _node(script: str) -> Any:
    code = f"import * as rules from {json.dumps(RULES_JS.as_uri())};\n{script}"
    proc = subprocess.run([node_binary(), "--input-type=module", "-e", code],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_rule_is_a_daemon_setting_with_the_same_default() -> None:
    found = _node("console.log(JSON.stringify({names: rules.RULE_SETTINGS, "
                  "defaults: rules.settingsFromRules(rules.DEFAULT_RULES)}));")
    for name in found["names"].values():
        assert name in config.SETTINGS, f"rules.js reads {name}, which the daemon lacks"
    defaults = config.defaults()
    assert found["defaults"] == {name: defaults[name] for name in found["defaults"]}


@pytest.mark.parametrize("given", TABLE, ids=lambda g: next(iter(g)))
def test_both_ends_normalise_a_rule_alike(given: dict[str, Any]) -> None:
    in_js = _node(f"console.log(JSON.stringify(rules.settingsFromRules("
                  f"rules.rulesFromSettings({json.dumps(given)}))));")
    in_python = {name: config.validate_setting(name, value) for name, value in given.items()}
    assert {name: in_js[name] for name in given} == in_python
