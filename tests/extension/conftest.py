"""Fixtures for the extension tests; the helpers live in browser_support.py (a plain module,
so that test files import them by a name no other conftest.py shares)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from browser_support import (  # noqa: E402,F401
    make_browser,
    playwright_sync,
    site,
    start_connected,
)
