"""What the tests that drive a real Transfer against a ScriptedSource share: a URL the source
answers for, engine settings tuned for speed, and file contents that tell offsets apart."""

from __future__ import annotations

from typing import Any

URL = "http://files.test/data.bin"
FAST: dict[str, Any] = {
    "connections": 4, "adaptive": False, "min_split_size": 16 * 1024, "read_size": 4096,
    "retry_base": 0.0, "retry_max": 0.01, "max_tries": 4, "checkpoint_interval": 0.05,
}


def data_of(size: int, seed: int = 1) -> bytes:
    """``size`` bytes in which a block moved by a few bytes never matches (no zero runs)."""
    return bytes((i * 31 + seed * 7 + i // 251) % 256 for i in range(size))
