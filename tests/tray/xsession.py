"""A throwaway X session for tray tests: Xvfb on a free display, Debian's `trayer` as the tray
host, screenshots with imagemagick's `import`, clicks with xdotool, windows read with Xlib."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

TOOLS = ("Xvfb", "trayer", "xdotool", "import", "dbus-run-session", "dbus-daemon")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@dataclass
class XSession:
    display: str
    env: dict[str, str]
    workdir: Path

    def screenshot(self, path: Path, window: str = "root") -> Image.Image:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["import", "-window", window, str(path)], env=self.env, check=True, timeout=30
        )
        with Image.open(path) as image:
            return image.convert("RGB")

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=15
        )
        assert done.returncode == 0, f"xdotool {args}: {done.stderr}"
        return done.stdout

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.xdotool("mousemove", "--sync", str(x), str(y))
        time.sleep(0.2)  # let GTK see the pointer enter (prelight) before the press
        self.xdotool("click", str(button))

    def tray_owner(self) -> int:
        import Xlib.display

        display = Xlib.display.Display(self.display)
        try:
            atom = display.intern_atom("_NET_SYSTEM_TRAY_S0")
            owner = display.get_selection_owner(atom)
            return int(owner.id) if owner else 0
        finally:
            display.close()

    def windows(self) -> list[dict[str, object]]:
        """Every viewable window: id, name, absolute x/y, width/height, override_redirect."""
        import Xlib.display
        import Xlib.X

        display = Xlib.display.Display(self.display)
        found: list[dict[str, object]] = []
        try:
            root = display.screen().root

            def walk(window: object, depth: int) -> None:
                for child in window.query_tree().children:  # type: ignore[attr-defined]
                    try:
                        attrs = child.get_attributes()
                        if attrs.map_state != Xlib.X.IsViewable:
                            continue
                        geo = child.get_geometry()
                        pos = child.translate_coords(root, 0, 0)
                        name = child.get_full_text_property(display.intern_atom("_NET_WM_NAME"))
                        name = name or child.get_wm_name() or ""
                        found.append(
                            {
                                "id": child.id,
                                "name": name if isinstance(name, str) else name.decode(),
                                "x": -pos.x,
                                "y": -pos.y,
                                "width": geo.width,
                                "height": geo.height,
                                "override_redirect": bool(attrs.override_redirect),
                                "depth": depth,
                            }
                        )
                        walk(child, depth + 1)
                    except Exception:  # a window may vanish while we look
                        continue

            walk(root, 0)
        finally:
            display.close()
        return found

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.1)


@contextmanager
def x_session(workdir: Path, width: int = 800, height: int = 600) -> Iterator[XSession]:
    """Xvfb on a display number it picks itself (-displayfd), trayer docked at the top right."""
    workdir.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        # -noreset: by default the server resets when its last client leaves (our short
        # Xlib probes), and a client connecting during that reset is refused.
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "xvfb.log", "wb"),  # noqa: SIM115 - lives as long as Xvfb
    )
    os.close(write_fd)
    processes = [xvfb]
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        assert number.isdigit(), f"Xvfb gave no display number (see {workdir / 'xvfb.log'})"
        display = f":{number}"
        runtime = workdir / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "PYSTRAY_BACKEND")
        }
        env.update(
            DISPLAY=display,
            HOME=str(home),
            XDG_RUNTIME_DIR=str(runtime),
            FREIGHT_HOME=str(workdir / "freight"),
            NO_AT_BRIDGE="1",  # no accessibility bus: nothing to start, nothing to wait for
            GDK_BACKEND="x11",
        )
        session = XSession(display, env, workdir)
        trayer = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
             "--height", "32", "--transparent", "false", "--SetDockType", "true"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "trayer.log", "wb"),  # noqa: SIM115
        )
        processes.append(trayer)
        session.wait_for(session.tray_owner, 15, "trayer to own _NET_SYSTEM_TRAY_S0")
        yield session
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def session_bus(base_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A private D-Bus session bus that outlives the processes it serves, as a desktop's does.

    ``dbus-run-session`` ends its bus when its child exits; a daemon started detached by
    `freight start` (or the native host) must keep its bus after the starter has gone.
    Yields ``base_env`` with DBUS_SESSION_BUS_ADDRESS set."""
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
        env=base_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        yield {**base_env, "DBUS_SESSION_BUS_ADDRESS": address}
    finally:
        bus.terminate()
        try:
            bus.wait(5)
        except subprocess.TimeoutExpired:
            bus.kill()
            bus.wait()
