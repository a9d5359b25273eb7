"""Registering the native host with the browsers, and the daemon's autostart at login.

Two layers, as everywhere in Freight:

- **Computation** (no I/O): :func:`plan_install` turns a :class:`Context` (platform, home,
  folders, Python) and the user's choices into a :class:`Plan`, a list of actions
  (:class:`WriteFile`, :class:`SetRegistryValue`). Manifest contents, launcher scripts,
  autostart entries and the folders and registry keys of every browser on Linux, macOS and
  Windows are computed here, so they are tested on any OS.
- **Effects**: :func:`apply` performs a plan and returns an :class:`InstallRecord` of exactly
  what it wrote; :func:`undo` removes exactly that. Registry calls are confined to the
  ``winreg`` boundary functions at the end of this module.

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
import ntpath
import os
import plistlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.errors import InputError

#: The name browsers know the host by (the manifest's ``name`` and file name).
HOST_NAME = "dev.freight.host"

DESCRIPTION = "Freight download manager: hands browser downloads to the Freight daemon"
GECKO_ID = "freight@freight.dev"
AUTOSTART_LABEL = "dev.freight.daemon"
RECORD_NAME = "install.json"
RECORD_VERSION = 1

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
    """extension/manifest.json of the source tree this package runs from."""
    return Path(__file__).resolve().parents[3] / "extension" / "manifest.json"


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


# -- context and plan ------------------------------------------------------------------------


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


@dataclass(frozen=True)
class WriteFile:
    path: Path
    content: str
    mode: int = 0o644
    what: str = ""


@dataclass(frozen=True)
class SetRegistryValue:
    key: str  # under HKEY_CURRENT_USER
    name: str  # "" is the key's default value
    value: str
    what: str = ""


Action = WriteFile | SetRegistryValue


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    browsers: list[str] = field(default_factory=list)
    launcher: Path | None = None


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


def launcher_path(ctx: Context) -> Path:
    return ctx.data_dir / ("freight-host.bat" if ctx.platform == "win32" else "freight-host")


def launcher_script(ctx: Context) -> str:
    """The executable the browser starts. Browsers exec it directly, with no shell."""
    if ctx.platform == "win32":
        # Chrome and Firefox start hosts on Windows through cmd.exe, so a .bat works.
        lines = ["@echo off"]
        if ctx.freight_home:
            lines.append(f'set "FREIGHT_HOME={ctx.freight_home}"')
        lines.append(f'"{ctx.python}" -m freight_host.host %*')
        return "\r\n".join(lines) + "\r\n"
    # The kernel reads the shebang line up to ~127 bytes (older kernels) and splits it at
    # whitespace: use /bin/sh only when the interpreter path cannot go there directly.
    if len(ctx.python) > 120 or re.search(r"\s", ctx.python):
        lines = ["#!/bin/sh",
                 "# Written by `freight install`; `freight uninstall` removes it."]
        if ctx.freight_home:
            lines.append(f"FREIGHT_HOME={_sh_quote(ctx.freight_home)}; export FREIGHT_HOME")
        lines.append(f'exec {_sh_quote(ctx.python)} -m freight_host.host "$@"')
        return "\n".join(lines) + "\n"
    lines = [
        f"#!{ctx.python}",
        "# Written by `freight install`: the browser runs this file directly (no shell) to",
        "# start Freight's native messaging host. `freight uninstall` removes it.",
        "import os",
        "import sys",
        "",
    ]
    if ctx.freight_home:
        lines.append(f"os.environ[\"FREIGHT_HOME\"] = {json.dumps(ctx.freight_home)}")
    lines += ["from freight_host.host import main", "", "sys.exit(main())"]
    return "\n".join(lines) + "\n"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def host_manifest(browser: Browser, launcher: Path, chromium_ids: list[str],
                  gecko_ids: list[str]) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": HOST_NAME,
        "description": DESCRIPTION,
        "path": str(launcher),
        "type": "stdio",
    }
    if browser.family == "firefox":
        manifest["allowed_extensions"] = list(dict.fromkeys(gecko_ids))
    else:
        manifest["allowed_origins"] = [f"chrome-extension://{i}/"
                                       for i in dict.fromkeys(chromium_ids)]
    return manifest


def daemon_command(ctx: Context) -> list[str]:
    return [ctx.python, "-m", "freight", "daemon"]


def desktop_exec_quote(arg: str) -> str:
    """Quote one argument for a .desktop Exec key (Desktop Entry Specification, "Exec")."""
    if arg and not re.search(r"[\s\"'\\><~|&;$*?#()`%=]", arg):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'.replace("%", "%%")


def autostart_actions(ctx: Context) -> list[Action]:
    """Start `freight daemon` at login: XDG autostart, a LaunchAgent, or the HKCU Run key."""
    cmd = daemon_command(ctx)
    env = {"FREIGHT_HOME": ctx.freight_home} if ctx.freight_home else {}
    if ctx.platform == "darwin":
        plist: dict[str, Any] = {"Label": AUTOSTART_LABEL, "ProgramArguments": cmd,
                                 "RunAtLoad": True, "ProcessType": "Interactive"}
        if env:
            plist["EnvironmentVariables"] = env
        path = ctx.home / "Library" / "LaunchAgents" / f"{AUTOSTART_LABEL}.plist"
        return [WriteFile(path, plistlib.dumps(plist).decode("utf-8"), what="LaunchAgent")]
    if ctx.platform == "win32":
        # pythonw.exe: no console window at login. The script carries FREIGHT_HOME, which a
        # Run value cannot set.
        script = ctx.data_dir / "freight-daemon.pyw"
        body = ["import os, sys"]
        if ctx.freight_home:
            body.append(f"os.environ[\"FREIGHT_HOME\"] = {json.dumps(ctx.freight_home)}")
        body += ["from freight.cli import main", 'sys.exit(main(["daemon"]))']
        pythonw = ntpath.join(ntpath.dirname(ctx.python), "pythonw.exe")
        return [
            WriteFile(script, "\n".join(body) + "\n", what="autostart script"),
            SetRegistryValue(r"Software\Microsoft\Windows\CurrentVersion\Run", "Freight",
                             subprocess.list2cmdline([pythonw, str(script)]),
                             what="autostart (HKCU Run)"),
        ]
    words = (["env"] + [f"{k}={v}" for k, v in env.items()] if env else []) + cmd
    entry = "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Name=Freight",
        "Comment=Freight download manager: resumes downloads after login",
        "Exec=" + " ".join(desktop_exec_quote(w) for w in words),
        "Terminal=false",
        "NoDisplay=true",
        "X-GNOME-Autostart-enabled=true",
    ]) + "\n"
    return [WriteFile(ctx.config_home / "autostart" / "freight.desktop", entry,
                      what="XDG autostart entry")]


def plan_install(ctx: Context, browsers: list[str], *, user_data_dir: Path | None = None,
                 chromium_ids: list[str], gecko_ids: list[str],
                 autostart: bool = True) -> Plan:
    """The actions of one `freight install`. Raises InputError (and plans nothing) on bad input."""
    unknown = [b for b in browsers if b not in BROWSERS]
    if unknown:
        raise InputError(f"unknown browser {unknown[0]!r}; known: {', '.join(BROWSERS)}")
    chosen = [BROWSERS[b] for b in dict.fromkeys(browsers)]
    needs_chromium = user_data_dir is not None or any(b.family == "chromium" for b in chosen)
    if needs_chromium and not chromium_ids:
        raise InputError("no Chromium extension ID: extension/manifest.json has no key;"
                         " pass --extension-id")
    plan = Plan(launcher=launcher_path(ctx))
    launcher = launcher_path(ctx)
    plan.actions.append(WriteFile(launcher, launcher_script(ctx), mode=0o755,
                                  what="host launcher"))
    for browser in chosen:
        path = host_manifest_path(browser, ctx)
        manifest = host_manifest(browser, launcher, chromium_ids, gecko_ids)
        plan.actions.append(WriteFile(path, json.dumps(manifest, indent=2) + "\n",
                                      what=f"host manifest for {browser.label}"))
        keys = {a.key for a in plan.actions if isinstance(a, SetRegistryValue)}
        if ctx.platform == "win32" and registry_key(browser) not in keys:
            plan.actions.append(SetRegistryValue(registry_key(browser), "", str(path),
                                                 what=f"registry key for {browser.label}"))
        plan.browsers.append(browser.name)
    if user_data_dir is not None:
        custom = Browser(CUSTOM, f"Chromium profile {user_data_dir}", "chromium", "", "", "")
        path = user_data_dir / "NativeMessagingHosts" / f"{HOST_NAME}.json"
        plan.actions.append(WriteFile(
            path, json.dumps(host_manifest(custom, launcher, chromium_ids, gecko_ids),
                             indent=2) + "\n",
            what=f"host manifest for the profile {user_data_dir}"))
        plan.browsers.append(CUSTOM)
    if autostart:
        plan.actions += autostart_actions(ctx)
    return plan


# -- detection (reads the machine) -----------------------------------------------------------


def detect_browsers(ctx: Context) -> list[str]:
    """Browsers that look installed: their profile folder exists, or their program does."""
    found = []
    for browser in BROWSERS.values():
        folder = host_manifest_dir(browser, ctx).parent
        if ctx.platform == "win32":
            present = registry_key_exists(browser.windows_key)
        else:
            present = folder.is_dir() or any(shutil.which(e) for e in browser.executables)
        if present:
            found.append(browser.name)
    return found


# -- effects ---------------------------------------------------------------------------------


@dataclass
class InstallRecord:
    """What install wrote, kept in the config folder so that uninstall removes exactly that."""

    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)  # folders install created, removed if empty
    registry: list[list[str]] = field(default_factory=list)  # [key, value name]
    browsers: list[str] = field(default_factory=list)
    user_data_dirs: list[str] = field(default_factory=list)

    def merge(self, other: InstallRecord) -> InstallRecord:
        def union(a: list[Any], b: list[Any]) -> list[Any]:
            out = list(a)
            for item in b:
                if item not in out:
                    out.append(item)
            return out

        return InstallRecord(union(self.files, other.files), union(self.dirs, other.dirs),
                             union(self.registry, other.registry),
                             union(self.browsers, other.browsers),
                             union(self.user_data_dirs, other.user_data_dirs))

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "files": self.files, "dirs": self.dirs,
                "registry": self.registry, "browsers": self.browsers,
                "user_data_dirs": self.user_data_dirs}

    @classmethod
    def from_json(cls, data: Any) -> InstallRecord:
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise InputError("the install record is not one this version of Freight wrote")
        return cls(list(data.get("files", [])), list(data.get("dirs", [])),
                   [list(r) for r in data.get("registry", [])],
                   list(data.get("browsers", [])), list(data.get("user_data_dirs", [])))


def load_record(ctx: Context) -> InstallRecord | None:
    try:
        return InstallRecord.from_json(json.loads(ctx.record_file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InputError(f"cannot read {ctx.record_file}: {exc}") from None


def save_record(ctx: Context, record: InstallRecord) -> None:
    ctx.config_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(ctx.record_file, json.dumps(record.to_json(), indent=2) + "\n", 0o600)


def _make_dirs(folder: Path, record: InstallRecord) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir()
        record.dirs.append(str(created))


def _write_atomic(path: Path, content: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def apply(plan: Plan, ctx: Context, user_data_dir: Path | None = None) -> InstallRecord:
    """Perform the plan. The record lists what was written even when a step fails midway
    (the exception carries it as ``exc.record``), so that uninstall can still clean up."""
    record = InstallRecord(browsers=list(plan.browsers),
                           user_data_dirs=[str(user_data_dir)] if user_data_dir else [])
    try:
        for action in plan.actions:
            if isinstance(action, WriteFile):
                _make_dirs(action.path.parent, record)
                _write_atomic(action.path, action.content, action.mode)
                if str(action.path) not in record.files:
                    record.files.append(str(action.path))
            else:
                registry_set(action.key, action.name, action.value)
                record.registry.append([action.key, action.name])
    except OSError as exc:
        exc.record = record  # type: ignore[attr-defined]
        raise
    return record


def undo(record: InstallRecord) -> list[str]:
    """Remove what the record lists; return what was removed (for the user)."""
    removed = []
    for key, name in record.registry:
        if registry_delete(key, name):
            removed.append(f"HKCU\\{key} {name or '(default)'}")
    for name in record.files:
        try:
            Path(name).unlink()
            removed.append(name)
        except FileNotFoundError:
            pass
    for name in sorted(record.dirs, key=len, reverse=True):
        try:
            Path(name).rmdir()  # only when empty: never remove what others put there
            removed.append(name + "/")
        except OSError:
            pass
    return removed


# -- Windows registry boundary: the only functions that touch winreg -------------------------
# Each opens HKEY_CURRENT_USER keys only. On other systems they refuse: plans for Windows are
# computed and tested anywhere, but performed on Windows only.


def registry_set(key: str, name: str, value: str) -> None:  # pragma: no cover - Windows only
    if sys.platform != "win32":
        raise OSError(f"cannot write the Windows registry on {sys.platform}")
    import winreg

    with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
        winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)


def registry_delete(key: str, name: str) -> bool:  # pragma: no cover - Windows only
    if sys.platform != "win32":
        return False
    import winreg

    try:
        if name:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as h:
                winreg.DeleteValue(h, name)
        else:
            winreg.DeleteKey(winreg.HKEY_CURRENT_USER, key)
    except FileNotFoundError:
        return False
    return True


def registry_get(key: str) -> str | None:  # pragma: no cover - Windows only
    if sys.platform != "win32":
        return None
    import winreg

    try:
        return str(winreg.QueryValue(winreg.HKEY_CURRENT_USER, key))
    except FileNotFoundError:
        return None


def registry_key_exists(key: str) -> bool:  # pragma: no cover - Windows only
    if sys.platform != "win32":
        return False
    import winreg

    try:
        winreg.OpenKey(winreg.HKEY_CURRENT_USER, key).Close()
    except FileNotFoundError:
        return False
    return True
