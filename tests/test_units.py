"""One unit system for sizes and rates: :mod:`freight.units` (CLI, tray) and
``extension/js/format.js`` (popup) print the same text for the same number."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from freight.units import format_rate, format_size
from nodejs import node_binary

ROOT = Path(__file__).resolve().parents[1]
FORMAT_JS = ROOT / "extension" / "js" / "format.js"
KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4

#: The rules, spelled out (docs in freight/units.py).
SIZES = [
    (0, "0 B"),
    (1, "1 B"),
    (1023, "1023 B"),
    (1023.4, "1023 B"),
    (1023.6, "1.0 KiB"),  # rounds to 1024 B: the next unit
    (1024, "1.0 KiB"),
    (1280, "1.3 KiB"),  # 1.25: halves round up, in both languages
    (1536, "1.5 KiB"),
    (99.9 * KIB, "99.9 KiB"),
    (99.96 * KIB, "100 KiB"),  # rounds to 100.0: no decimal from 100 on
    (100 * KIB, "100 KiB"),
    (1023 * KIB, "1023 KiB"),
    (MIB - 1, "1.0 MiB"),  # never "1024 KiB"
    (MIB, "1.0 MiB"),
    (662700032, "632 MiB"),
    (12.4 * MIB, "12.4 MiB"),
    (3 * GIB, "3.0 GiB"),
    (TIB - 1, "1.0 TiB"),
    (5000 * TIB, "5000 TiB"),  # TiB is the largest unit
    (None, "?"),
    (-5, "?"),
    (float("nan"), "?"),
]
RATES = [
    (0, "0 B/s"),
    (0.4, "0 B/s"),
    (0.5, "1 B/s"),
    (511.5, "512 B/s"),
    (1535.9, "1.5 KiB/s"),
    (10 * MIB, "10.0 MiB/s"),
    (150 * MIB, "150 MiB/s"),
    (None, "0 B/s"),
    (-5, "0 B/s"),
]
#: More values for the comparison with JavaScript: edges of every unit, ties, big numbers.
MORE = [
    *(base * k + d for base in (KIB, MIB, GIB, TIB) for k in (1, 99.95, 100, 1023.95, 1024)
      for d in (-1, 0, 1)),
    *(n + 0.05 for n in range(0, 2000, 37)),
    *(1024 * (n / 10 + 0.05) for n in range(0, 1000, 7)),
    2**53, 1e18, 2**60, 123456789.123, 0.05, 0.95, 99.95, 1e-9,
]


@pytest.mark.parametrize(("n", "text"), SIZES)
def test_format_size(n: float | None, text: str) -> None:
    assert format_size(n) == text


@pytest.mark.parametrize(("n", "text"), RATES)
def test_format_rate(n: float | None, text: str) -> None:
    assert format_rate(n) == text


def test_python_and_javascript_print_the_same() -> None:
    values = [n for n, _ in SIZES + RATES] + MORE
    finite = [n for n in values if n is None or n == n]  # NaN has no JSON form
    script = (
        f"import {{ formatBytes, formatRate }} from {json.dumps(FORMAT_JS.as_uri())};\n"
        "let input = '';\n"
        "process.stdin.on('data', (c) => { input += c; });\n"
        "process.stdin.on('end', () => {\n"
        "  const values = JSON.parse(input);\n"
        "  console.log(JSON.stringify(values.map((v) => [formatBytes(v), formatRate(v)])));\n"
        "});\n"
    )
    proc = subprocess.run(
        [node_binary(), "--input-type=module", "-e", script], input=json.dumps(finite),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    js = json.loads(proc.stdout)
    python = [[format_size(n), format_rate(n)] for n in finite]
    differ = [(n, p, j) for n, p, j in zip(finite, python, js) if p != j]
    assert not differ, differ
    assert len(js) == len(finite) > 100
