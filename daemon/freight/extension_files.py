"""Where Freight's browser extension lies, for every way Freight can be installed.

The extension's source is ``extension/`` at the top of the repository. A wheel carries a copy
of it as package data, ``freight/extension/`` (setup.py copies it in at build time), because an
installed package has no source tree around it. An editable install (``pip install -e .``,
``make run``) has no copy and finds the source tree's folder instead.
"""

from __future__ import annotations

from pathlib import Path

#: The copy a wheel carries: site-packages/freight/extension/.
PACKAGED = Path(__file__).resolve().parent / "extension"
#: The source tree's folder, for an editable install: this file is daemon/freight/<here>.
SOURCE_TREE = Path(__file__).resolve().parents[2] / "extension"


def extension_dir() -> Path:
    """The folder a browser loads the extension from (it holds ``manifest.json``).

    The packaged copy wins, so that an installed Freight never reads a folder that happens to
    lie next to its site-packages. When neither folder has a manifest the install is broken:
    the packaged path is returned, and whoever reads a file from it reports the missing file.
    """
    for folder in (PACKAGED, SOURCE_TREE):
        if (folder / "manifest.json").is_file():
            return folder
    return PACKAGED


def manifest_file() -> Path:
    """The extension's manifest.json; its ``key`` fixes the Chromium extension ID."""
    return extension_dir() / "manifest.json"


def ids_file() -> Path:
    """ids.json: the extension's Chromium ID and Firefox add-on id, as the daemon reads them."""
    return extension_dir() / "ids.json"
