"""Build the browser packages of the extension: a Chromium .zip and a Firefox .xpi.

    python tools/build_extension.py [--source extension] [--out dist]

extension/manifest.json serves both browsers while developing (each ignores, with a warning,
what is the other's). Each package gets a manifest with only its own browser's keys
(docs/HOST.md, "The browser packages"):

- Firefox: ``background.scripts`` (Firefox has no extension service workers), no
  ``background.service_worker``, no Chromium ``key``, no ``minimum_chrome_version``; and
  ``data_collection_permissions`` saying it collects nothing, which Mozilla's add-on site asks
  of new add-ons.
- Chromium: ``background.service_worker``, no ``background.scripts``, no
  ``browser_specific_settings``. The ``key`` stays: it fixes the extension ID that the native
  host's manifest allows (``chrome-extension://<ID>/``).

ids.json and EXTENSION_ID are for Freight itself (the daemon, `freight install`), not for the
browser: they stay out. The archives are deterministic (sorted entries, fixed timestamps and
modes), so one source gives byte-identical packages.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The oldest timestamp a zip entry can hold (MS-DOS dates start in 1980).
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
#: Files of the extension folder that no browser reads.
NOT_FOR_BROWSERS = frozenset({"ids.json", "EXTENSION_ID"})
#: What Firefox calls "collects no data" (browser_specific_settings.gecko).
NO_DATA_COLLECTED = {"required": ["none"]}


def manifest_for(browser: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest of one browser's package ("chromium" or "firefox")."""
    out = copy.deepcopy(manifest)
    background = out.get("background", {})
    if browser == "firefox":
        background.pop("service_worker", None)
        out.pop("key", None)
        out.pop("minimum_chrome_version", None)
        gecko = out.setdefault("browser_specific_settings", {}).setdefault("gecko", {})
        gecko.setdefault("data_collection_permissions", NO_DATA_COLLECTED)
    elif browser == "chromium":
        background.pop("scripts", None)
        out.pop("browser_specific_settings", None)
    else:
        raise ValueError(f"unknown browser {browser!r}: chromium or firefox")
    return out


def package_files(source: Path) -> list[Path]:
    """The extension's files a browser needs, sorted, relative to `source` (no manifest)."""
    files = [p.relative_to(source) for p in source.rglob("*") if p.is_file()]
    return sorted(p for p in files
                  if p.name not in NOT_FOR_BROWSERS and p.as_posix() != "manifest.json"
                  and not any(part.startswith(".") for part in p.parts))


def package_name(browser: str, manifest: dict[str, Any]) -> str:
    suffix = "xpi" if browser == "firefox" else "zip"
    return f"freight-{manifest['version']}-{browser}.{suffix}"


def build(browser: str, source: Path, out_dir: Path) -> Path:
    """Write one browser's package into `out_dir`; returns its path."""
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / package_name(browser, manifest)
    entries = [("manifest.json",
                (json.dumps(manifest_for(browser, manifest), indent=2) + "\n").encode())]
    entries += [(p.as_posix(), (source / p).read_bytes()) for p in package_files(source)]
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # the same mode whatever the checkout's umask
            zf.writestr(info, data)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "extension",
                        help="the extension folder (default: extension/)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="where the packages go (default: dist/)")
    args = parser.parse_args(argv)
    if not (args.source / "manifest.json").is_file():
        print(f"build_extension: no manifest.json in {args.source}", file=sys.stderr)
        return 2
    for browser in ("chromium", "firefox"):
        print(build(browser, args.source, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
