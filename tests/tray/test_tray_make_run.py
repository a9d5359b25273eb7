"""`make run`'s dependency step gives the tray its menu, or says once what to install.

- The step itself (tools/tray_deps.py, which `make run` calls through `make venv-tray`): with
  pkg-config failing it prints the install hint exactly once and exits 0, so that `make run`
  carries on with the menu-less icon; with PyGObject already there it says nothing.
- The whole path: a fresh venv made by `make venv-tray` (the very steps `make run` takes
  before it starts the daemon), then that venv's `freight daemon` on Xvfb: its icon docks,
  and a real click opens a menu whose items are all there. With FREIGHT_SCREENSHOTS=DIR the
  open menu is saved as DIR/tray-menu.png (docs/img/tray-menu.png comes from this run).
  The daemon picks its backend itself, as for a user: appindicator. With no
  StatusNotifierWatcher on the test's session bus it falls back to an XEmbed icon, which
  docks in trayer and opens its menu on a left click, so no backend needs forcing here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
from freight import config
from freight.store import Store
from freight.tray import model as tray_icon
from freight.tray.model import TraySnapshot
from test_tray_daemon import docked_icon, wait_for
from test_tray_display import _text_rows, box_of, open_menu
from xsession import missing_tools, session_bus, x_session

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tools" / "tray_deps.py"
HINT_HEAD = "the tray icon will have no menu"


def _bare_python(where: Path) -> Path:
    """A venv with nothing in it (no PyGObject, no pip): what `make run` starts from."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True,
                   timeout=60)
    return where / "bin" / "python"


def _stub(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)


def test_without_build_dependencies_the_hint_is_printed_once_and_run_goes_on(tmp_path):
    python = _bare_python(tmp_path / "venv")
    stubs = tmp_path / "stubs"
    _stub(stubs, "pkg-config", "exit 1")  # no .pc file for gobject-introspection or cairo
    env = {**os.environ, "PATH": f"{stubs}:/usr/bin:/bin"}
    done = subprocess.run([str(python), str(HELPER)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert said.count(HINT_HEAD) == 1, said
    assert said.count("sudo apt install ") == 1, said
    assert said.count("sudo dnf install ") == 1, said
    assert "libgirepository1.0-dev" in said and "gobject-introspection-devel" in said
    assert "gobject-introspection-1.0" in said  # what was missing, named
    # Nothing was installed into the venv.
    assert subprocess.run([str(python), "-c", "import gi"], capture_output=True).returncode != 0


def test_with_pygobject_present_the_step_says_nothing(tmp_path):
    stubs = tmp_path / "stubs"
    _stub(stubs, "pkg-config", "exit 1")  # would fail: it must not even be asked
    env = {**os.environ, "PATH": f"{stubs}:/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(HELPER)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""


def test_make_run_goes_through_the_dependency_step(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={tmp_path / 'venv'}", "run"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    step = next(i for i, line in enumerate(lines) if "tools/tray_deps.py" in line)
    daemon = next(i for i, line in enumerate(lines) if line.endswith("freight daemon"))
    assert step < daemon, lines


@pytest.mark.display
@pytest.mark.timeout(900)
def test_after_make_runs_install_steps_the_tray_has_its_menu(tmp_path):
    missing = missing_tools()
    assert not missing, f"needs {', '.join(missing)} (apt: xvfb trayer xdotool imagemagick dbus)"
    venv = tmp_path / "venv"
    home = tmp_path / "home"
    home.mkdir()
    # Not the outer `make test`'s flags and variables: this is a make run of its own.
    make_env = {k: v for k, v in os.environ.items()
                if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    make_env["HOME"] = str(home)
    built = subprocess.run(
        ["make", "-C", str(ROOT), f"VENV={venv}", f"PYTHON={sys._base_executable}",
         "venv-tray"],
        env=make_env, capture_output=True, text=True, timeout=840,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert HINT_HEAD not in built.stdout + built.stderr, built.stdout + built.stderr
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import gi"]).returncode == 0

    with x_session(tmp_path / "x") as xs, session_bus(xs.env) as desktop:
        env = {k: v for k, v in desktop.items() if k != "PYSTRAY_BACKEND"}
        env.update(FREIGHT_HOME=str(tmp_path / "freight"),
                   FREIGHT_DOWNLOAD_DIR=str(tmp_path / "downloads"),
                   PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
        paths = config.paths_from_env(env).ensure()
        store = Store(paths.database)
        store.set_settings({"port": 0})
        store.close()
        log = (tmp_path / "daemon.out").open("wb")
        # The last step of `make run`: the venv's own `freight daemon`, in the foreground.
        daemon = subprocess.Popen([str(venv / "bin" / "freight"), "daemon"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(paths.daemon_file.exists, 30, "the daemon to listen")
            icon = docked_icon(xs, "Freight — idle")
            status = subprocess.run([str(venv / "bin" / "freight"), "status", "--json"],
                                    env=env, capture_output=True, text=True, timeout=30)
            tray = json.loads(status.stdout)["tray"]
            assert tray["shown"] and tray["menu"] and tray["backend"] == "appindicator", tray
            # A real click (xdotool) opens the menu; every item of the model is a row in it.
            menu = open_menu(xs, icon, "appindicator")
            shot = tmp_path / "menu.png"
            image = xs.screenshot(shot)
            rows = _text_rows(image.crop(box_of(menu)))
            texts = [e.text for e in tray_icon.menu_model(TraySnapshot(), can_prompt=True)
                     if not e.separator]
            assert len(rows) == len(texts), (rows, texts, str(shot))
            _save_screenshot(image, icon, menu)
            xs.xdotool("key", "Escape")
        finally:
            with suppress(ProcessLookupError):
                daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = daemon.wait()
            log.close()
        assert code == 0, (tmp_path / "daemon.out").read_text(errors="replace")[-4000:]


def _save_screenshot(image, icon, menu) -> None:  # type: ignore[no-untyped-def]
    """The panel and the open menu, cut from the root window, into $FREIGHT_SCREENSHOTS."""
    folder = os.environ.get("FREIGHT_SCREENSHOTS")
    if not folder:
        return
    margin = 24
    left = max(0, min(int(icon["x"]), int(menu["x"])) - margin)
    right = min(image.width, max(int(icon["x"]) + int(icon["width"]),
                                 int(menu["x"]) + int(menu["width"])) + margin)
    bottom = min(image.height, int(menu["y"]) + int(menu["height"]) + margin)
    target = Path(folder)
    if not target.is_absolute():
        target = ROOT / target
    target.mkdir(parents=True, exist_ok=True)
    image.crop((left, 0, right, bottom)).save(target / "tray-menu.png")
