"""The build step pyproject.toml cannot declare: the wheel carries the browser extension.

``extension/`` stays at the top of the repository (the source of truth, which browsers load
during development). Building a wheel copies it into the package as ``freight/extension/``, so
that an installed Freight (pip, pipx) can print the folder to load and read the extension's
fixed ID; :mod:`freight.extension_files` finds either folder. An editable install copies
nothing: it reads the source tree's folder.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXTENSION = Path(__file__).resolve().parent / "extension"


class BuildPyWithExtension(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not (EXTENSION / "manifest.json").is_file():
            raise SystemExit(f"{EXTENSION}/manifest.json is missing: the wheel needs the"
                             " extension (an sdist carries it through MANIFEST.in)")
        target = Path(self.build_lib) / "freight" / "extension"
        for path in sorted(EXTENSION.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                dest = target / path.relative_to(EXTENSION)
                self.mkpath(str(dest.parent))
                self.copy_file(str(path), str(dest))


setup(cmdclass={"build_py": BuildPyWithExtension})
