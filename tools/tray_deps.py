"""`make run`'s tray step: give the venv PyGObject (the tray's menu) when it can be built here.

Run with the venv's Python: ``.venv/bin/python tools/tray_deps.py``. On Linux, when this
Python cannot import ``gi`` yet, it checks what pip needs to build PyGObject < 3.51 from
source (pkg-config finding gobject-introspection-1.0 and cairo, a C compiler, Python's
headers) and installs the ``tray-gtk`` extra's requirements when all are there. Otherwise, or
when the build fails, it prints once what to install and exits 0: the daemon then runs with
the menu-less xorg icon, and the next `make run` tries again. Why build rather than borrow
the system's python3-gi: docs/ARCHITECTURE.md "The tray's menu".
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_deps():  # type: ignore[no-untyped-def]
    # Loaded by path: this runs before (or without) Freight being importable in this Python.
    spec = importlib.util.spec_from_file_location("freight_tray_deps",
                                                  ROOT / "daemon" / "freight" / "tray" / "deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deps = _load_deps()


def has_gi() -> bool:
    return importlib.util.find_spec("gi") is not None


def missing_build_deps() -> list[str]:
    """What pip's build of PyGObject would miss here, named for a person to read."""
    missing: list[str] = []
    if shutil.which("pkg-config") is None:
        missing.append("pkg-config")
    else:
        for module in deps.PKG_CONFIG_MODULES:
            found = subprocess.run(["pkg-config", "--exists", module], capture_output=True)
            if found.returncode != 0:
                missing.append(f"{module} (pkg-config)")
    compiler = os.environ.get("CC") or next(
        (c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is None or shutil.which(compiler.split()[0]) is None:
        missing.append("a C compiler")
    include = sysconfig.get_paths().get("include") or ""
    if not (Path(include) / "Python.h").is_file():
        missing.append(f"Python's headers ({include}/Python.h)")
    return missing


def tray_requirements() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["optional-dependencies"]["tray-gtk"])


def hint(why: str) -> None:
    lines = [f"freight: the tray icon will have no menu: {why}.",
             "  To get the menu, install PyGObject's build dependencies and run `make run` again:"]
    lines += [f"    {line}" for line in deps.install_lines()]
    print("\n".join(lines), flush=True)


TYPELIB_CHECK = """
import gi
gi.require_version("Gtk", "3.0")
"""


def check_typelibs() -> None:
    """PyGObject without GTK's typelib still gives no menu: say so (no display needed)."""
    found = subprocess.run([sys.executable, "-c", TYPELIB_CHECK], capture_output=True)
    if found.returncode != 0:
        hint("PyGObject is installed but GTK 3's typelib is not (gir1.2-gtk-3.0, Fedora: gtk3)")


def main() -> int:
    if not sys.platform.startswith("linux"):
        return 0  # the macOS and Windows backends have menus without PyGObject
    if has_gi():
        check_typelibs()
        return 0
    missing = missing_build_deps()
    if missing:
        hint("PyGObject cannot be built here (missing: " + ", ".join(missing) + ")")
        return 0
    print("freight: building PyGObject for the tray's menu (about a minute, once)", flush=True)
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                            *tray_requirements()])
    if built.returncode != 0:
        hint("building PyGObject failed (see pip's output above)")
    else:
        check_typelibs()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
