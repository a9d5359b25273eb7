"""docs/SECURITY.md names, row by row, the test that shows each defence holds: every test it
names must exist, so that a renamed or deleted test cannot leave a defence unproven."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# [S/test_x.py::test_name](../tests/security/test_x.py) or [::test_name](../tests/...)
LINK = re.compile(r"\[(?:[A-Z]/)?[\w/]*?(?:\.py)?::(\w+)\]\(\.\./(tests/[\w/]+\.py)\)")
# Plain mentions: tests/daemon/test_x.py::test_name
PLAIN = re.compile(r"(?<![(/\w])(tests/[\w/]+\.py)::(\w+)")


def _named_tests(doc: str) -> list[tuple[str, str]]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    found = [(path, name) for name, path in LINK.findall(text)]
    found += PLAIN.findall(text)
    return found


def test_every_test_security_md_names_exists() -> None:
    named = _named_tests("SECURITY.md")
    assert len(named) > 40  # the pattern still matches the page's links
    missing = []
    for path, name in named:
        file = ROOT / path
        if not file.is_file() or not re.search(rf"^\s*def {name}\(", file.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"
