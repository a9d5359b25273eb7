"""The capture rules, kept as daemon settings: the checks of their values.

The extension decides whether to take a browser download (extension/js/rules.js) from these
settings, which it reads with ``get_settings`` and follows through ``settings.changed``
(docs/ARCHITECTURE.md "Capture rules"). The daemon only keeps and checks them; it never
applies them itself, since ``freight add`` and the link picker are asked for by the user.

The checks normalise a value exactly as rules.js ``normalizeRules`` does, so that a rule
typed in the options page, in ``freight settings`` or in the tray means the same thing
(tests/extension/test_rules_settings.py runs both over one table).
"""

from __future__ import annotations

import re
from typing import Any

from freight.errors import InputError

#: The one default for the minimum size (docs/ARCHITECTURE.md "Capture rules"): take every
#: download. Freight exists to take downloads from the browser; a smaller file going to
#: Freight costs a moment, one left with the browser loses resume and the queue silently.
DEFAULT_MIN_SIZE = 0
#: Sizes travel as JSON numbers to JavaScript: past 2**53 - 1 they are no longer exact.
MAX_MIN_SIZE = 2**53 - 1
MAX_ENTRIES = 1000
MAX_ENTRY_CHARS = 2048
#: All of one list: every setting travels in one get_settings answer and twice in a
#: settings.changed (all, and what changed), which the host passes to the browser only under
#: 1 MiB (docs/HOST.md); three lists at 6 bytes a character (JSON escapes) stay well below.
MAX_LIST_CHARS = 16 * 1024
#: What the options page and `freight settings` split a typed list on.
_SEPARATORS = re.compile(r"[\s,]+")


def split_list(text: str) -> list[str]:
    """ "iso, zip  exe" → ["iso", "zip", "exe"] (rules.js ``splitList``)."""
    return [part for part in _SEPARATORS.split(text) if part]


def _entries(name: str, value: list[str], what: str) -> list[str]:
    if len(value) > MAX_ENTRIES:
        raise InputError(f"setting {name!r} holds more than {MAX_ENTRIES} entries",
                         setting=name)
    kept: list[str] = []
    for raw in value:
        entry = raw.strip()
        if not entry:
            continue
        if len(entry) > MAX_ENTRY_CHARS:
            raise InputError(f"setting {name!r}: an entry is longer than {MAX_ENTRY_CHARS} "
                             "characters", setting=name)
        if _SEPARATORS.search(entry):
            raise InputError(f"setting {name!r} takes one {what} per entry, without spaces or "
                             f"commas: {entry[:60]!r}", setting=name)
        kept.append(entry)
    if sum(len(entry) for entry in kept) > MAX_LIST_CHARS:
        raise InputError(f"setting {name!r} holds more than {MAX_LIST_CHARS} characters in all",
                         setting=name)
    return kept


def type_patterns(name: str, value: list[str]) -> list[str]:
    """File extensions ("iso") or MIME globs ("video/*"): lower case, without a leading
    "." or "*." (rules.js ``normalizeType``), each once, in the order given."""
    out: list[str] = []
    for entry in _entries(name, value, "type"):
        kind = re.sub(r"^\*?\.", "", entry.lower())
        if kind and kind not in out:
            out.append(kind)
    return out


def site_patterns(name: str, value: list[str]) -> list[str]:
    """Host globs ("*.example.com", "example.com" covers its subdomains) or URL globs
    ("https://x.org/private/*"), kept as typed: rules.js ``siteMatches`` ignores case."""
    out: list[str] = []
    for entry in _entries(name, value, "site"):
        if entry not in out:
            out.append(entry)
    return out


CHECKS: dict[str, Any] = {
    "capture_always_types": type_patterns,
    "capture_never_types": type_patterns,
    "capture_never_sites": site_patterns,
}
