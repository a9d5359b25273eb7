"""The browsers Freight registers with, and where each looks for a native host, per OS.

Nothing here writes anything: :mod:`freight.cli.register` plans the files and registry values
of an install from these, :mod:`freight.cli.effects` performs the plan.

Where browsers look for host manifests (per user):
https://developer.chrome.com/docs/extensions/develop/concepts/native-messaging#native-messaging-host-location
and https://developer.mozilla.org/en-US/docs/Mozilla/Add-ons/WebExtensions/Native_manifests .
On Linux Chromium-family browsers read ``$XDG_CONFIG_HOME/<browser>/NativeMessagingHosts`` and,
for a custom ``--user-data-dir``, ``<dir>/NativeMessagingHosts``; Firefox-family browsers read
``~/.<browser>/native-messaging-hosts`` (not under ~/.config). On Windows the manifest may live
anywhere; the browser finds it through the default value of an HKCU registry key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight import extension_files
from freight.errors import InputError

#: The name browsers know the host by (the manifest's ``name`` and file name).
HOST_NAME = "dev.freight.host"

GECKO_ID = "freight@freight.dev"
RECORD_NAME = "install.json"

_CHROMIUM_ID = re.compile(r"^[a-p]{32}$")
# Firefox add-on ids: an email-like id or a {GUID}.
_GECKO_ID = re.compile(r"^([A-Za-z0-9._+-]+@[A-Za-z0-9.-]+|\{[0-9A-Fa-f-]{36}\})$")


@dataclass(frozen=True)
class Browser:
    name: str
    label: str
    family: str  # "chromium" (allowed_origins) or "firefox" (allowed_extensions)
    linux: str  # under XDG_CONFIG_HOME (chromium family) or HOME (firefox family)
    macos: str  # under ~/Library/Application Support
    windows_key: str  # under HKEY_CURRENT_USER
    executables: tuple[str, ...] = ()


BROWSERS: dict[str, Browser] = {
    b.name: b
    for b in [
        Browser("chrome", "Google Chrome", "chromium", "google-chrome", "Google/Chrome",
                r"Software\Google\Chrome", ("google-chrome", "google-chrome-stable")),
        Browser("chromium", "Chromium", "chromium", "chromium", "Chromium",
                r"Software\Chromium", ("chromium", "chromium-browser")),
        Browser("edge", "Microsoft Edge", "chromium", "microsoft-edge", "Microsoft Edge",
                r"Software\Microsoft\Edge", ("microsoft-edge", "microsoft-edge-stable")),
        Browser("brave", "Brave", "chromium", "BraveSoftware/Brave-Browser",
                "BraveSoftware/Brave-Browser", r"Software\BraveSoftware\Brave-Browser",
                ("brave-browser", "brave")),
        Browser("vivaldi", "Vivaldi", "chromium", "vivaldi", "Vivaldi", r"Software\Vivaldi",
                ("vivaldi", "vivaldi-stable")),
        # Opera on Windows reads Chrome's registry key; it has no key of its own.
        Browser("opera", "Opera", "chromium", "opera", "com.operasoftware.Opera",
                r"Software\Google\Chrome", ("opera",)),
        Browser("firefox", "Firefox", "firefox", ".mozilla", "Mozilla", r"Software\Mozilla",
                ("firefox", "firefox-esr")),
        Browser("librewolf", "LibreWolf", "firefox", ".librewolf", "LibreWolf",
                r"Software\LibreWolf", ("librewolf",)),
        Browser("waterfox", "Waterfox", "firefox", ".waterfox", "Waterfox",
                r"Software\Waterfox", ("waterfox",)),
    ]
}
#: The pseudo-browser of ``--user-data-dir``: a Chromium profile folder of one's choosing.
CUSTOM = "user-data-dir"


# -- extension ids ---------------------------------------------------------------------------


def extension_id_from_key(key_b64: str) -> str:
    """Chromium's ID for an extension whose manifest ``key`` is base64 DER SPKI.

    The ID is the first 128 bits of sha256(DER) as 32 hex digits, each mapped 0-f → a-p.
    """
    try:
        der = base64.b64decode(key_b64, validate=True)
    except ValueError:
        raise InputError("the extension manifest's key is not valid base64") from None
    digest = hashlib.sha256(der).hexdigest()[:32]
    return "".join(chr(ord("a") + int(c, 16)) for c in digest)


def default_extension_manifest() -> Path:
    """The manifest.json of the extension this Freight carries (:mod:`freight.extension_files`:
    the installed package's copy, or the source tree's)."""
    return extension_files.manifest_file()


def read_extension_id(manifest: Path) -> str | None:
    """The Chromium ID fixed by ``key`` in the extension's manifest; None if there is none."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {manifest}: {exc}") from None
    key = data.get("key") if isinstance(data, dict) else None
    return extension_id_from_key(key) if isinstance(key, str) else None


def split_extension_ids(ids: list[str]) -> tuple[list[str], list[str]]:
    """Sort ``--extension-id`` values into Chromium IDs and Firefox add-on ids."""
    chromium, gecko = [], []
    for value in ids:
        if _CHROMIUM_ID.match(value):
            chromium.append(value)
        elif _GECKO_ID.match(value):
            gecko.append(value)
        else:
            raise InputError(
                f"not an extension id: {value!r} (Chromium: 32 letters a-p;"
                " Firefox: name@domain or {GUID})"
            )
    return chromium, gecko


# -- the machine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """Everything the computation needs to know about the machine, read once at the edge."""

    platform: str  # "linux", "darwin" or "win32"
    home: Path
    config_home: Path  # $XDG_CONFIG_HOME or ~/.config (Linux)
    data_dir: Path  # Freight's data folder: the launcher lives here
    config_dir: Path  # Freight's config folder: the install record lives here
    python: str  # the interpreter that runs Freight
    freight_home: str | None = None  # carried into the launcher of a portable install

    @classmethod
    def current(cls, data_dir: Path, config_dir: Path, freight_home: str | None,
                environ: dict[str, str] | None = None) -> Context:
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or Path.home())
        config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") \
            else home / ".config"
        platform = "linux" if sys.platform.startswith(("linux", "freebsd", "openbsd")) \
            else sys.platform
        return cls(platform, home, config_home, data_dir, config_dir, sys.executable,
                   freight_home)

    @classmethod
    def for_paths(cls, paths: Any, environ: dict[str, str] | None = None) -> Context:
        """The context of a Freight install (a ``freight.config.Paths``)."""
        return cls.current(paths.data_dir, paths.config_dir,
                           str(paths.config_dir) if paths.portable else None, environ)

    @property
    def record_file(self) -> Path:
        return self.config_dir / RECORD_NAME


def host_manifest_dir(browser: Browser, ctx: Context) -> Path:
    """Where this browser looks for host manifests (on Windows: where we keep ours)."""
    if ctx.platform == "darwin":
        return ctx.home / "Library" / "Application Support" / browser.macos / \
            "NativeMessagingHosts"
    if ctx.platform == "win32":
        return ctx.data_dir / "hosts" / browser.name
    if browser.family == "firefox":
        return ctx.home / browser.linux / "native-messaging-hosts"
    return ctx.config_home / browser.linux / "NativeMessagingHosts"


def host_manifest_path(browser: Browser, ctx: Context) -> Path:
    return host_manifest_dir(browser, ctx) / f"{HOST_NAME}.json"


def registry_key(browser: Browser) -> str:
    return browser.windows_key + "\\NativeMessagingHosts\\" + HOST_NAME
