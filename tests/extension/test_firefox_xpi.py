"""The Firefox package `make dist` builds (tools/build_extension.py), installed for good as the
README says: Firefox ESR refuses the unsigned .xpi until `xpinstall.signatures.required` is
false, then keeps it across a restart, and its background starts the native host each time.

WebDriver BiDi's webExtension.install with ``moz:permanent`` installs as about:addons'
"Install Add-on From File" does (a permanent install, signature checked), not as a temporary
add-on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser_support import (  # noqa: F401 (fixtures)
    EXTENSION,
    GECKO_ID,
    ROOT,
    Bidi,
    firefox_profile,
    freight_daemon,
    freight_env,
    install_host,
    start_firefox,
    wait_for,
)

pytestmark = pytest.mark.browser


def _build_xpi(out: Path) -> Path:
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "build_extension.py"),
                          "--source", str(EXTENSION), "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return next(out.glob("*-firefox.xpi"))


def _host_starts(env: dict[str, str]) -> int:
    """How many times a browser started freight-host for our add-on (its log says by whom)."""
    log = Path(env["FREIGHT_HOME"]) / "logs" / "freight-host.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum(1 for line in text.splitlines() if "started (host" in line and GECKO_ID in line)


def _install(bidi: Bidi, xpi: Path) -> str:
    res = bidi.cmd("webExtension.install", extensionData={"type": "archivePath",
                                                          "path": str(xpi)},
                   **{"moz:permanent": True})
    return str(res["extension"])


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # an exited child the fixture has not reaped yet


def _close(bidi: Bidi, profile: Path) -> None:
    # Firefox's profile lock is a symlink to "IP:+PID", left behind at exit; the next Firefox
    # on this profile may start once that process is gone.
    pid = int(os.readlink(profile / "lock").rpartition("+")[2])
    bidi.cmd("browser.close")
    wait_for(lambda: not _running(pid), timeout=30, what="Firefox to exit")


def test_release_prefs_refuse_the_unsigned_xpi(start_firefox, freight_env,  # noqa: F811
                                               tmp_path: Path) -> None:
    xpi = _build_xpi(tmp_path / "dist")
    profile = tmp_path / "ff-profile"
    firefox_profile(profile, tmp_path / "ff-downloads")
    bidi = start_firefox(profile, freight_env)
    with pytest.raises(AssertionError, match="ERROR_SIGNEDSTATE_REQUIRED"):
        _install(bidi, xpi)
    assert not (profile / "extensions" / f"{GECKO_ID}.xpi").exists()


def test_the_unsigned_xpi_stays_installed_across_a_restart_when_allowed(
        start_firefox, freight_env, freight_daemon, tmp_path: Path) -> None:  # noqa: F811
    install_host(freight_env, "--browser", "firefox")
    xpi = _build_xpi(tmp_path / "dist")
    profile = tmp_path / "ff-profile"
    firefox_profile(profile, tmp_path / "ff-downloads",
                    extra={"xpinstall.signatures.required": False})

    bidi = start_firefox(profile, freight_env)
    assert _install(bidi, xpi) == GECKO_ID
    assert (profile / "extensions" / f"{GECKO_ID}.xpi").is_file()  # not a temporary add-on
    wait_for(lambda: _host_starts(freight_env) >= 1, timeout=30,
             what="the add-on's background to start freight-host")
    _close(bidi, profile)
    before = _host_starts(freight_env)

    start_firefox(profile, freight_env)  # nothing installed this time: it is still there
    wait_for(lambda: _host_starts(freight_env) > before, timeout=30,
             what="the add-on, after the restart, to start freight-host again")
