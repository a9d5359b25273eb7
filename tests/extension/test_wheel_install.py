"""Freight installed as a package: the wheel `make dist` builds, installed (not editable) into
a fresh virtual environment as pip or pipx does, sets itself up with `freight install` and
captures a real download in Chromium with the extension folder the package carries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    EXTENSION,
    EXTENSION_ID,
    HOST_NAME,
    ROOT,
    Browser,
    Daemon,
    assert_browser_wrote_nothing,
    click,
    completed,
    daemon_env,
    sha256_file,
    wait_for,
)

#: What the copy of the source tree leaves out: nothing a build reads.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".tools", "dist", "build", "*.egg-info",
                                     "test-output", "__pycache__", "node_modules", ".*_cache")


@dataclass
class Install:
    dist: Path
    venv: Path

    @property
    def wheel(self) -> Path:
        return next(self.dist.glob("freight-*.whl"))

    @property
    def sdist(self) -> Path:
        return next(self.dist.glob("freight-*.tar.gz"))

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def env(self, tmp_path: Path) -> dict[str, str]:
        """A throwaway HOME and FREIGHT_HOME; nothing of the test's own environment on PATH
        or in Python's search path, so every program found is the installed one's."""
        env = daemon_env(tmp_path)
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
            env.pop(name, None)
        own_bin = str(Path(sys.executable).parent)
        path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != own_bin]
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), *path])
        return env

    def run(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin("freight")), *args], env=env, capture_output=True,
                              text=True, timeout=120, cwd=env["HOME"])

    def extension_dir(self, env: dict[str, str]) -> Path:
        res = subprocess.run(
            [str(self.bin("python")), "-c",
             "from freight.extension_files import extension_dir; print(extension_dir())"],
            env=env, capture_output=True, text=True, timeout=60, cwd=env["HOME"])
        assert res.returncode == 0, res.stderr
        return Path(res.stdout.strip())


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """`make dist` on a copy of the source tree (a build writes next to the sources), then
    `pip install` of the wheel into a new venv: its dependencies come from the package index
    as for any user, never from the environment running the tests."""
    base = tmp_path_factory.mktemp("wheel")
    source, dist, venv = base / "source", base / "dist", base / "venv"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    res = subprocess.run(["make", "-s", "-C", str(source), "dist", f"DIST={dist}",
                          f"BIN={Path(sys.executable).parent}"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    built = Install(dist, venv)
    res = subprocess.run([str(built.bin("python")), "-m", "pip", "install", "-q",
                          str(built.wheel)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return built


def _extension_files() -> set[str]:
    return {p.relative_to(EXTENSION).as_posix() for p in EXTENSION.rglob("*") if p.is_file()}


def test_make_dist_ships_the_wheel_the_sdist_and_both_browser_packages(install: Install) -> None:
    assert sorted(p.name for p in install.dist.iterdir()) == [
        "freight-0.1.0-chromium.zip", "freight-0.1.0-firefox.xpi",
        "freight-0.1.0-py3-none-any.whl", "freight-0.1.0.tar.gz"]
    with zipfile.ZipFile(install.wheel) as whl:
        names = set(whl.namelist())
        carried = {n.removeprefix("freight/extension/") for n in names
                   if n.startswith("freight/extension/")}
        assert carried == _extension_files()
        assert {"manifest.json", "ids.json", "EXTENSION_ID", "js/background.js",
                "popup.html", "css/popup.css", "icons/16.png"} <= carried
        assert whl.read("freight/extension/manifest.json") == \
            (EXTENSION / "manifest.json").read_bytes()
        assert {"freight_host/host.py", "freight/extension_files.py"} <= names
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "freight-host = freight_host.host:main" in whl.read(entry_points).decode()
    with tarfile.open(install.sdist) as sdist:  # the wheel is built from the sdist
        in_sdist = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"setup.py", "extension/manifest.json", "tools/build_extension.py"} <= in_sdist


def test_the_installed_package_reads_its_own_extension(install: Install,
                                                       tmp_path: Path) -> None:
    env = install.env(tmp_path)
    folder = install.extension_dir(env)
    assert folder.is_relative_to(install.venv), folder
    assert folder.name == "extension" and folder.parent.name == "freight"
    res = subprocess.run(
        [str(install.bin("python")), "-c",
         "import sys, freight; from freight.daemon.origins import extension_origins;"
         "print(sys.prefix); print(freight.__file__); print(sorted(extension_origins()))"],
        env=env, capture_output=True, text=True, timeout=60, cwd=env["HOME"])
    prefix, module, origins = res.stdout.splitlines()
    assert Path(prefix) == install.venv and Path(module).is_relative_to(install.venv)
    assert f"chrome-extension://{EXTENSION_ID}" in origins  # the daemon lets it through


def test_freight_install_from_the_wheel_registers_every_browser_found(
        install: Install, tmp_path: Path) -> None:
    # This machine has Chromium and Firefox ESR (.ci/run installs both): both are found.
    env = install.env(tmp_path)
    res = install.run(env, "install", "--no-autostart")
    assert res.returncode == 0, res.stdout + res.stderr
    home = Path(env["HOME"])
    chromium = json.loads((home / ".config/chromium/NativeMessagingHosts" /
                           f"{HOST_NAME}.json").read_text())
    firefox = json.loads((home / ".mozilla/native-messaging-hosts" /
                          f"{HOST_NAME}.json").read_text())
    assert chromium["allowed_origins"] == [f"chrome-extension://{EXTENSION_ID}/"]
    assert firefox["allowed_extensions"] == ["freight@freight.dev"]
    launcher = Path(chromium["path"])
    assert launcher == Path(firefox["path"])
    assert launcher.read_text().splitlines()[0] == f"#!{install.bin('python')}"
    folder = install.extension_dir(env)
    assert f"the extension's folder: {folder}\n" in res.stdout
    assert f"click 'Load unpacked' and choose {folder}\n" in res.stdout
    assert f"'Load Temporary Add-on' -> {folder / 'manifest.json'}" in res.stdout


@pytest.mark.browser
def test_a_capture_runs_on_the_installed_package(install: Install, make_browser: Any,
                                                 site: Any, tmp_path: Path) -> None:
    env = install.env(tmp_path)
    folder = install.extension_dir(env)

    def register(udd: Path) -> None:
        res = install.run(env, "install", "--browser", "chromium", "--user-data-dir",
                          str(udd), "--no-autostart")
        assert res.returncode == 0, res.stdout + res.stderr

    # The installed daemon, on a free port (6817 may be anyone's on a shared machine); the
    # installed host finds it through daemon.json.
    daemon = Daemon(env, tmp_path / "daemon.out", freight=install.bin("freight"))
    try:
        b: Browser = make_browser(register, extra_env=env, extension=folder)
        try:
            wait_for(lambda: b.state()["status"]["state"] == "connected", timeout=60,
                     what="the extension to reach the daemon")
        except AssertionError as e:
            logs = Path(env["FREIGHT_HOME"]) / "logs"
            raise AssertionError(f"{e}; status {b.state()['status']}; logs: " + " | ".join(
                p.read_text(errors="replace")[-2000:] for p in logs.glob("*.log"))) from None
        digest = site.add("from-the-wheel.bin", 2 * 1024 * 1024)
        click(b, site, "#f0")
        d = completed(b, "from-the-wheel.bin")
        assert Path(d["path"]).parent == Path(env["FREIGHT_DOWNLOAD_DIR"])
        assert sha256_file(Path(d["path"])) == digest
        assert_browser_wrote_nothing(b)
        freight_home = Path(env["FREIGHT_HOME"])
        pid = json.loads((freight_home / "state" / "daemon.json").read_text())["pid"]
        assert pid == daemon.proc.pid
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert Path(argv0) == install.bin("python"), argv0  # so sys.prefix is the venv
        loaded = Path(f"/proc/{pid}/maps").read_text()
        assert str(install.venv / "lib") in loaded  # its compiled modules are the venv's
        assert str(ROOT) not in loaded
        host_log = (freight_home / "logs" / "freight-host.log").read_text()
        assert f"python {install.bin('python')}" in host_log, host_log
    finally:
        daemon.stop()
