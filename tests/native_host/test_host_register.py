"""Registration: Linux for real (files in a tmp HOME), macOS and Windows as computation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import plistlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from freight.cli import browsers, effects, register
from freight.errors import InputError
from host_support import HostProcess, StandInDaemon

EXT_MANIFEST = Path(__file__).resolve().parents[2] / "extension" / "manifest.json"
CHROMIUM_ID = "a" * 32


def freight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freight", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def ctx_for(platform: str, tmp: Path, python: str = "/opt/py/bin/python3") -> browsers.Context:
    return browsers.Context(platform, tmp / "home", tmp / "home" / ".config", tmp / "data",
                            tmp / "config", python, None)


def test_extension_id_from_key_matches_the_documented_rule() -> None:
    der = b"\x30\x82" + bytes(range(200))
    digest = hashlib.sha256(der).hexdigest()[:32]
    expected = digest.translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))
    assert browsers.extension_id_from_key(base64.b64encode(der).decode()) == expected
    with pytest.raises(InputError):
        browsers.extension_id_from_key("not base64 !!")


def test_the_real_extension_key_gives_the_extensions_id() -> None:
    ids = json.loads((EXT_MANIFEST.parent / "ids.json").read_text())
    assert browsers.read_extension_id(EXT_MANIFEST) == ids["chromium"]


def test_extension_ids_are_sorted_and_bad_ones_refused() -> None:
    assert browsers.split_extension_ids([CHROMIUM_ID, "x@y.org", "{" + "0" * 36 + "}"]) == (
        [CHROMIUM_ID], ["x@y.org", "{" + "0" * 36 + "}"])
    for bad in ["ABC", "a" * 31, "q" * 32, "no spaces@x", "../x"]:
        with pytest.raises(InputError):
            browsers.split_extension_ids([bad])


@pytest.mark.parametrize("platform,browser,expected", [
    ("linux", "chrome", "home/.config/google-chrome/NativeMessagingHosts"),
    ("linux", "brave", "home/.config/BraveSoftware/Brave-Browser/NativeMessagingHosts"),
    ("linux", "firefox", "home/.mozilla/native-messaging-hosts"),
    ("linux", "librewolf", "home/.librewolf/native-messaging-hosts"),
    ("darwin", "edge", "home/Library/Application Support/Microsoft Edge/NativeMessagingHosts"),
    ("darwin", "opera",
     "home/Library/Application Support/com.operasoftware.Opera/NativeMessagingHosts"),
    ("darwin", "firefox", "home/Library/Application Support/Mozilla/NativeMessagingHosts"),
    ("win32", "vivaldi", "data/hosts/vivaldi"),
])
def test_manifest_folders(tmp_path: Path, platform: str, browser: str, expected: str) -> None:
    ctx = ctx_for(platform, tmp_path)
    assert browsers.host_manifest_dir(browsers.BROWSERS[browser], ctx) == tmp_path / expected


def test_windows_plan_writes_manifests_and_hkcu_keys(tmp_path: Path) -> None:
    ctx = ctx_for("win32", tmp_path, python=r"C:\Py\python.exe")
    plan = register.plan_install(ctx, ["chrome", "firefox", "opera"], chromium_ids=[CHROMIUM_ID],
                                 gecko_ids=["freight@freight.dev"])
    keys = {(a.key, a.name): a.value for a in plan.actions
            if isinstance(a, register.SetRegistryValue)}
    chrome_manifest = str(tmp_path / "data" / "hosts" / "chrome" / "dev.freight.host.json")
    assert keys[(r"Software\Google\Chrome\NativeMessagingHosts\dev.freight.host", "")] in (
        chrome_manifest, str(tmp_path / "data" / "hosts" / "opera" / "dev.freight.host.json"))
    assert keys[(r"Software\Mozilla\NativeMessagingHosts\dev.freight.host", "")] == str(
        tmp_path / "data" / "hosts" / "firefox" / "dev.freight.host.json")
    run = keys[(r"Software\Microsoft\Windows\CurrentVersion\Run", "Freight")]
    assert run.startswith(r"C:\Py\pythonw.exe ") and run.endswith("freight-daemon.pyw")
    launcher = plan.actions[0]
    assert isinstance(launcher, register.WriteFile)
    assert launcher.path.name == "freight-host.bat"
    assert '"C:\\Py\\python.exe" -m freight_host.host %*' in launcher.content
    # Performing a Windows plan anywhere else refuses at the registry boundary.
    if sys.platform != "win32":
        with pytest.raises(OSError):
            effects.apply(plan, ctx)


def test_macos_plan_writes_a_launch_agent(tmp_path: Path) -> None:
    ctx = browsers.Context("darwin", tmp_path, tmp_path / ".config", tmp_path / "d",
                           tmp_path / "c", "/usr/bin/python3", "/portable home")
    plan = register.plan_install(ctx, ["chrome"], chromium_ids=[CHROMIUM_ID], gecko_ids=[])
    agent = [a for a in plan.actions if a.what == "LaunchAgent"][0]
    assert isinstance(agent, register.WriteFile)
    assert agent.path == tmp_path / "Library/LaunchAgents/dev.freight.daemon.plist"
    data = plistlib.loads(agent.content.encode())
    assert data["ProgramArguments"] == ["/usr/bin/python3", "-m", "freight", "daemon"]
    assert data["RunAtLoad"] is True
    assert data["EnvironmentVariables"] == {"FREIGHT_HOME": "/portable home"}


def test_a_python_path_with_spaces_gets_a_sh_launcher(tmp_path: Path) -> None:
    ctx = ctx_for("linux", tmp_path, python="/opt/my python/bin/python3")
    script = register.launcher_script(ctx)
    assert script.startswith("#!/bin/sh\n")
    assert "exec '/opt/my python/bin/python3' -m freight_host.host \"$@\"" in script


def test_desktop_exec_quoting() -> None:
    assert register.desktop_exec_quote("/usr/bin/python3") == "/usr/bin/python3"
    assert register.desktop_exec_quote('/a b/"c"$d%') == '"/a b/\\"c\\"\\$d%%"'


def test_bad_input_is_refused_before_anything_is_planned(tmp_path: Path) -> None:
    ctx = ctx_for("linux", tmp_path)
    with pytest.raises(InputError, match="unknown browser"):
        register.plan_install(ctx, ["netscape"], chromium_ids=[CHROMIUM_ID], gecko_ids=[])
    with pytest.raises(InputError, match="extension-id"):
        register.plan_install(ctx, ["chrome"], chromium_ids=[], gecko_ids=[])


@pytest.fixture
def env(host_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # No browser on PATH: detection must come from the profile folders of the tmp HOME.
    (tmp_path / "bin").mkdir()
    return {**host_env, "PATH": str(tmp_path / "bin")}


def test_install_finds_browsers_by_their_folders_then_uninstall_removes_all(
        env: dict[str, str], tmp_path: Path, freight_home: Path) -> None:
    home = Path(env["HOME"])
    (home / ".config" / "chromium").mkdir(parents=True)
    (home / ".config" / "BraveSoftware" / "Brave-Browser").mkdir(parents=True)
    (home / ".mozilla").mkdir()
    before = sorted(str(p) for p in home.rglob("*"))
    result = freight(env, "install", "--extension-id", "b" * 32, "--extension-id", "x@y.org")
    assert result.returncode == 0, result.stderr
    chromium = json.loads((home / ".config/chromium/NativeMessagingHosts/dev.freight.host.json")
                          .read_text())
    own_id = browsers.read_extension_id(EXT_MANIFEST)
    assert chromium["allowed_origins"] == [f"chrome-extension://{own_id}/",
                                           f"chrome-extension://{'b' * 32}/"]
    assert chromium["type"] == "stdio" and chromium["name"] == "dev.freight.host"
    launcher = Path(chromium["path"])
    assert launcher.is_absolute() and os.access(launcher, os.X_OK)
    assert launcher.read_text().startswith(f"#!{sys.executable}\n")
    brave = home / ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts/dev.freight.host.json"
    assert json.loads(brave.read_text()) == chromium
    firefox = json.loads((home / ".mozilla/native-messaging-hosts/dev.freight.host.json")
                         .read_text())
    assert firefox["allowed_extensions"] == ["freight@freight.dev", "x@y.org"]
    assert "allowed_origins" not in firefox
    assert not (home / ".config" / "google-chrome").exists()  # not installed: not touched
    desktop = (Path(env["XDG_CONFIG_HOME"]) / "autostart" / "freight.desktop").read_text()
    assert f"{sys.executable} -m freight daemon" in desktop
    assert f'"FREIGHT_HOME={freight_home.resolve()}"' in desktop

    result = freight(env, "uninstall")
    assert result.returncode == 0, result.stderr
    assert sorted(str(p) for p in home.rglob("*")) == before
    assert not launcher.exists() and not (freight_home / "install.json").exists()
    assert "nothing to remove" in freight(env, "uninstall").stdout


def test_xdg_config_home_is_respected(env: dict[str, str], tmp_path: Path) -> None:
    xdg = tmp_path / "elsewhere"
    env = {**env, "XDG_CONFIG_HOME": str(xdg)}
    result = freight(env, "install", "--browser", "vivaldi")
    assert result.returncode == 0, result.stderr
    assert (xdg / "vivaldi/NativeMessagingHosts/dev.freight.host.json").is_file()
    assert (xdg / "autostart/freight.desktop").is_file()
    assert not (Path(env["HOME"]) / ".config").exists()


def test_bad_install_arguments_change_nothing(env: dict[str, str], freight_home: Path) -> None:
    result = freight(env, "install", "--browser", "chromium", "--extension-id", "nope")
    assert result.returncode == 2 and "not an extension id" in result.stderr
    result = freight(env, "install", "--browser", "mosaic")
    assert result.returncode == 2
    assert not Path(env["HOME"]).exists() and list(freight_home.iterdir()) == []


def test_user_data_dir_install_gives_a_launcher_that_serves(
        env: dict[str, str], tmp_path: Path, stand_in: StandInDaemon, spawn_host: Any) -> None:
    """What a real Chromium with --user-data-dir reads, and the process it would start."""
    udd = tmp_path / "profile"
    result = freight(env, "install", "--user-data-dir", str(udd), "--no-autostart")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((udd / "NativeMessagingHosts/dev.freight.host.json").read_text())
    assert manifest["allowed_origins"] == [
        f"chrome-extension://{browsers.read_extension_id(EXT_MANIFEST)}/"]
    assert not (Path(env["XDG_CONFIG_HOME"]) / "autostart").exists()
    assert not (Path(env["HOME"]) / ".config" / "chromium").exists()
    # The browser execs the launcher with the origin and a minimal environment: the launcher
    # itself carries FREIGHT_HOME.
    bare_env = {"PATH": "/usr/bin:/bin", "HOME": env["HOME"],
                "PYTHON_KEYRING_BACKEND": env["PYTHON_KEYRING_BACKEND"]}
    host: HostProcess = spawn_host([manifest["path"], manifest["allowed_origins"][0]], bare_env)
    assert host.call("host.hello")["result"]["daemon"] == f"ws://127.0.0.1:{stand_in.port}/"
    assert host.call("version")["result"]["protocol"] == 1
    host.close_stdin()
    assert host.wait() == 0
    log = (Path(env["FREIGHT_HOME"]) / "logs" / "freight-host.log").read_text()
    assert manifest["allowed_origins"][0] in log
