"""How sizes and rates are written for people: one unit system for the CLI, the tray and the
extension's popup (``extension/js/format.js`` follows the same rules; a test runs both over
one table of values and holds them to the same text).

- Binary multiples with IEC names: B, KiB, MiB, GiB, TiB (1 KiB = 1024 B), the same numbers
  that :func:`parse_rate` reads ("2M" is 2 MiB/s).
- Whole bytes without decimals; one decimal below 100 of a unit, none from 100 on:
  ``0 B``, ``1023 B``, ``1.5 KiB``, ``99.9 KiB``, ``100 KiB``, ``632 MiB``.
- Rounded to the nearest shown digit, halves up; a value that rounds to 1024 of a unit is
  shown in the next one (``1.0 MiB``, never ``1024 KiB``). TiB is the largest unit.
- A rate is a size with ``/s``. An unknown size (None, negative, not finite) is ``?``; a
  rate that is unknown or below zero is ``0 B/s``.

The arithmetic is the same IEEE double operations in both languages (division by 1024,
``floor(x * 10 + 0.5)``), so Python and JavaScript print the same text for the same number.
"""

from __future__ import annotations

import math

from freight.errors import InputError

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_size(n: float | None) -> str:
    """Bytes as text: ``1536`` → ``1.5 KiB``; None (unknown) → ``?``."""
    if n is None or isinstance(n, bool):
        return "?"
    value = float(n)
    if not math.isfinite(value) or value < 0:
        return "?"
    unit = 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    while True:
        if unit > 0:
            tenths = math.floor(value * 10 + 0.5)
            if tenths < 1000:
                return f"{tenths // 10}.{tenths % 10} {UNITS[unit]}"
        whole = math.floor(value + 0.5)
        if whole >= 1024 and unit < len(UNITS) - 1:
            value /= 1024
            unit += 1
            continue
        return f"{whole} {UNITS[unit]}"


def format_rate(bytes_per_s: float | None) -> str:
    """Bytes per second as text: ``10485760`` → ``10.0 MiB/s``; below zero → ``0 B/s``."""
    if bytes_per_s is None or isinstance(bytes_per_s, bool):
        value = 0.0
    else:
        value = float(bytes_per_s)
        if not math.isfinite(value) or value < 0:
            value = 0.0
    return format_size(value) + "/s"


def parse_rate(text: str) -> int:
    """'2M' → 2097152 bytes/s; '500K', '1.5M', '1G', '800' (bytes). Raises InputError."""
    units = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
    raw = text.strip().upper().removesuffix("/S").removesuffix("IB").removesuffix("B")
    number, unit = raw, ""
    if raw and raw[-1] in "KMG":
        number, unit = raw[:-1], raw[-1]
    try:
        value = float(number)
    except ValueError:
        raise InputError(f"not a rate: {text!r} (try 500K, 2M, 1G)") from None
    if not value > 0 or value != value or value == float("inf"):
        raise InputError(f"a rate must be positive: {text!r}")
    return max(1, int(value * units[unit]))


def parse_size(text: str) -> int:
    """Like parse_rate, for sizes: '10M' → 10485760."""
    return parse_rate(text)
