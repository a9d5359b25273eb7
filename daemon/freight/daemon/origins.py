"""Origins of Freight's own extension, which the API server lets through its Origin check
(docs/SECURITY.md; RFC 6455 §10.2: browsers send Origin on every page's WebSocket)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from freight.extension_files import ids_file as installed_ids_file


def extension_origins(ids_file: Path | None = None) -> set[str]:
    """Origins of Freight's own extension, from the extension's ids.json when present (the
    installed package's copy, or the source tree's: :mod:`freight.extension_files`).

    Chromium's origin is ``chrome-extension://<id>``. Firefox's ``moz-extension://`` origin
    is a per-profile UUID, not the add-on id: it is used only when ids.json gives a UUID;
    otherwise users add theirs to the ``allowed_origins`` setting.
    """
    if ids_file is None:
        ids_file = installed_ids_file()
    try:
        ids = json.loads(ids_file.read_text())
    except (OSError, ValueError):
        return set()
    origins = set()
    chromium = ids.get("chromium") if isinstance(ids, dict) else None
    if isinstance(chromium, str) and chromium.isalpha() and len(chromium) == 32:
        origins.add(f"chrome-extension://{chromium}")
    gecko = ids.get("gecko") if isinstance(ids, dict) else None
    if isinstance(gecko, str) and _is_uuid(gecko):
        origins.add(f"moz-extension://{gecko.strip('{}')}")
    return origins


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text.strip("{}"))
    except ValueError:
        return False
    return True
