"""What `freight add` and `freight get` say of a URL they did not download again: one
wording for both (the daemon's rule is freight.daemon.duplicates; `freight get`'s own is
the same URL finished into the same folder)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from freight.models import DownloadState

S = DownloadState

AGAIN_HINT = " (--again downloads a new copy)"


def already(state: str, download_id: int, name: str | None, path: str | None, url: str) -> str:
    if state == S.COMPLETED.value:
        return f"already downloaded: {path}{AGAIN_HINT}"
    name = name or os.path.basename(urlsplit(url).path) or url
    if state == S.ACTIVE.value:
        return f"already downloading as {download_id}: {name}{AGAIN_HINT}"
    paused = " (paused)" if state == S.PAUSED.value else ""
    return f"already queued as {download_id}: {name}{paused}{AGAIN_HINT}"
