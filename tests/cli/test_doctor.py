"""`freight doctor` against a real daemon, a real install in a tmp HOME and broken variants."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freight import config
from freight.cli import doctor
from freight.store import Store


@pytest.fixture
def env(freight_home: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    e = dict(os.environ)
    e.update(FREIGHT_HOME=str(freight_home), HOME=str(tmp_path / "home"),
             XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
             PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
             FREIGHT_DOWNLOAD_DIR=str(tmp_path / "downloads"),
             PATH=str(Path(sys.executable).parent) + ":/usr/bin:/bin")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "http_proxy",
                 "HTTP_PROXY", "all_proxy"):
        e.pop(name, None)
    (tmp_path / "home").mkdir()
    paths = config.paths_from_env({"FREIGHT_HOME": str(freight_home)}).ensure()
    store = Store(paths.database)
    store.set_settings({"port": 0})  # never collide with a daemon on the default port
    store.close()
    yield e
    try:
        pid = json.loads((freight_home / "state" / "daemon.json").read_text())["pid"]
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            os.kill(pid, 0)
            time.sleep(0.05)
    except (OSError, ValueError, KeyError):
        pass


def freight(env: dict[str, str], *args: str,
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freight", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_doctor(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = freight(env, "doctor", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] == (result.returncode == 0)
    return result.returncode, {c["name"]: c for c in report["checks"]}


def test_all_well_with_a_running_daemon_and_an_installed_host(
        env: dict[str, str], tmp_path: Path) -> None:
    udd = tmp_path / "profile"
    assert freight(env, "install", "--user-data-dir", str(udd), "--no-autostart").returncode == 0
    assert freight(env, "start").returncode == 0
    code, checks = run_doctor(env)
    assert code == 0, checks
    assert checks["daemon"]["status"] == "ok" and "protocol 1" in checks["daemon"]["detail"]
    # Forced to the file fallback: works, but says so.
    assert checks["token"]["status"] == "warn" and "0600" in checks["token"]["detail"]
    manifest = checks[f"manifest profile {udd}"]
    assert manifest["status"] == "ok"
    launcher = [c for n, c in checks.items() if n.startswith("launcher ")]
    assert len(launcher) == 1 and launcher[0]["status"] == "ok"
    assert "version (daemon 0.1.0)" in launcher[0]["detail"]
    assert checks["downloads folder"]["status"] == "ok"
    assert checks["tray"]["status"] == "warn" and "DISPLAY" in checks["tray"]["detail"]
    text = freight(env, "doctor")
    assert text.returncode == 0 and "all is well" in text.stdout


def test_broken_links_fail_with_a_fix_each(env: dict[str, str], tmp_path: Path) -> None:
    home = Path(env["HOME"])
    udd = tmp_path / "profile"
    assert freight(env, "install", "--browser", "chromium", "--browser", "firefox",
                   "--user-data-dir", str(udd), "--no-autostart").returncode == 0
    # Chromium's manifest: not JSON. Firefox's: allows another add-on only. The profile's:
    # a launcher that is gone.
    (home / ".config/chromium/NativeMessagingHosts/dev.freight.host.json").write_text("{oops")
    ff = home / ".mozilla/native-messaging-hosts/dev.freight.host.json"
    data = json.loads(ff.read_text())
    data["allowed_extensions"] = ["other@example.org"]
    ff.write_text(json.dumps(data))
    profile = udd / "NativeMessagingHosts/dev.freight.host.json"
    data = json.loads(profile.read_text())
    data["path"] = str(tmp_path / "gone" / "freight-host")
    profile.write_text(json.dumps(data))
    code, checks = run_doctor(env)
    assert code == 1
    assert checks["daemon"]["status"] == "fail" and checks["daemon"]["fix"] == "freight start"
    chromium = checks["manifest Chromium"]
    assert chromium["status"] == "fail" and "not valid JSON" in chromium["detail"]
    assert chromium["fix"] == "freight install --browser chromium"
    assert "freight@freight.dev" in checks["manifest Firefox"]["detail"]
    assert "does not exist" in checks[f"manifest profile {udd}"]["detail"]
    assert not any(n.startswith("launcher ") for n in checks)  # no valid manifest: none run
    assert all(c["fix"] for c in checks.values() if c["status"] != "ok")


def test_each_manifest_fix_repairs_what_it_names(env: dict[str, str], tmp_path: Path) -> None:
    """Run every manifest fix as doctor prints it (with --no-autostart, to keep the test from
    writing a login entry): afterwards that manifest is ok. A
    custom Chromium profile's fix names the profile (a plain `freight install` does not write
    there)."""
    home = Path(env["HOME"])
    udd = tmp_path / "profile"
    assert freight(env, "install", "--browser", "chromium", "--user-data-dir", str(udd),
                   "--no-autostart").returncode == 0
    (home / ".config/chromium/NativeMessagingHosts/dev.freight.host.json").write_text("{oops")
    (udd / "NativeMessagingHosts/dev.freight.host.json").write_text("{oops")
    _, checks = run_doctor(env)
    broken = {name: c["fix"] for name, c in checks.items()
              if name.startswith("manifest ") and c["status"] == "fail"}
    assert set(broken) == {"manifest Chromium", f"manifest profile {udd}"}, checks
    for fix in broken.values():
        command = shlex.split(fix)
        assert command[0] == "freight", fix
        assert freight(env, *command[1:], "--no-autostart").returncode == 0, fix
    _, checks = run_doctor(env)
    for name in broken:
        assert checks[name]["status"] == "ok", checks[name]


def test_a_launcher_that_does_not_speak_native_messaging_fails(
        env: dict[str, str], tmp_path: Path) -> None:
    udd = tmp_path / "profile"
    assert freight(env, "install", "--user-data-dir", str(udd), "--no-autostart").returncode == 0
    launcher = Path(json.loads((udd / "NativeMessagingHosts/dev.freight.host.json")
                               .read_text())["path"])
    launcher.write_text("#!/bin/sh\necho 'Hello from a broken launcher'\n")
    code, checks = run_doctor(env)
    check = checks[f"launcher {launcher}"]
    assert code == 1 and check["status"] == "fail"
    assert "freight install" in check["fix"]
    # The fix works: install again, and the launcher answers (the daemon is down: still ok).
    assert freight(env, "install", "--user-data-dir", str(udd), "--no-autostart").returncode == 0
    code, checks = run_doctor(env)
    assert checks[f"launcher {launcher}"]["status"] == "ok"
    assert "daemon is down" in checks[f"launcher {launcher}"]["detail"]


def test_no_registration_at_all_fails(env: dict[str, str]) -> None:
    code, checks = run_doctor(env)
    assert code == 1 and checks["browsers"]["status"] == "fail"
    assert "freight install" in checks["browsers"]["fix"]


def test_downloads_folder_checks(tmp_path: Path) -> None:
    assert doctor.check_downloads(str(tmp_path / "new" / "folder")).status == "ok"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = doctor.check_downloads(str(locked))
        if os.geteuid() != 0:  # root writes anywhere
            assert result.status == "fail" and "not writable" in result.detail
    finally:
        locked.chmod(0o700)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert doctor.check_downloads(str(a_file)).status == "fail"


def test_tray_check_without_display_warns() -> None:
    check = doctor.check_tray({"PATH": "/usr/bin"})
    if sys.platform.startswith("linux"):
        assert check.status == "warn" and "DISPLAY" in check.detail
