"""Performing a registration plan on this machine, and taking it back.

:func:`apply` performs a :class:`~freight.cli.register.Plan` and returns an
:class:`InstallRecord` of exactly what it wrote, kept in the config folder; :func:`undo`
removes exactly that. :func:`detect_browsers` looks for installed browsers. Registry calls
are confined to the ``winreg`` boundary functions at the end of this module.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.cli.browsers import BROWSERS, Context, host_manifest_dir
from freight.cli.register import Plan, WriteFile
from freight.config import private_file, private_folder, tighten
from freight.errors import InputError

RECORD_VERSION = 1


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


# -- the record of what was written -----------------------------------------------------


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
    private_folder(ctx.config_dir)
    _tighten_own(ctx)
    _write_atomic(ctx.record_file, json.dumps(record.to_json(), indent=2) + "\n", 0o600)


def _tighten_own(ctx: Context) -> None:
    """Freight's config and data folders, made looser by an older install, back to 0700;
    a FREIGHT_HOME is the user's folder and keeps its mode."""
    if ctx.freight_home is None:
        for folder in (ctx.config_dir, ctx.data_dir):
            if folder.is_dir():
                tighten(folder)


def _make_dirs(folder: Path, record: InstallRecord) -> None:
    """Every folder install makes (its own, the browsers' manifest folders, autostart) is
    0700: the user's browser and session read them as the user."""
    for created in private_folder(folder):
        record.dirs.append(str(created))


def _write_atomic(path: Path, content: str, mode: int) -> None:
    """Write path 0600 (0700 for a program: ``mode`` says which), whatever the umask."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = private_file(tmp, os.O_WRONLY | os.O_TRUNC)
    with open(fd, "w", encoding="utf-8", newline="") as f:
        f.write(content)
    os.chmod(tmp, 0o700 if mode & 0o100 else 0o600)
    os.replace(tmp, path)


def apply(plan: Plan, ctx: Context, user_data_dir: Path | None = None) -> InstallRecord:
    """Perform the plan. The record lists what was written even when a step fails midway
    (the exception carries it as ``exc.record``), so that uninstall can still clean up."""
    record = InstallRecord(browsers=list(plan.browsers),
                           user_data_dirs=[str(user_data_dir)] if user_data_dir else [])
    try:
        _tighten_own(ctx)
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
