"""Which pystray backend can show the tray icon here, and pystray's backends with our fixes.

Backends, in order of preference: ``PYSTRAY_BACKEND`` when set; ``appindicator`` (a
StatusNotifierItem on modern desktops, an XEmbed icon elsewhere) or ``gtk`` (XEmbed) where
PyGObject works (``pip install 'freight[tray-gtk]'``); else ``xorg`` (python-xlib) with the
fixes in :func:`_xorg_icon_class`. pystray is imported lazily: without a display its import
raises Xlib errors instead of ImportError, so :func:`available` checks first.
:mod:`freight.tray.icon` runs the icon on the class :func:`icon_class` returns.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from freight.tray import model as tray_icon

#: Backends pystray knows on each platform, in our order of preference.
LINUX_BACKENDS = ("appindicator", "gtk", "xorg")
ALL_BACKENDS = (*LINUX_BACKENDS, "darwin", "win32")
GTK_BACKENDS = ("appindicator", "gtk")
#: Backends whose icon has a menu: pystray's xorg backend has none (a click only runs the
#: default entry).
MENU_BACKENDS = (*GTK_BACKENDS, "darwin", "win32")


def report(shown: bool, backend: str | None, reason: str) -> dict[str, Any]:
    """The tray as a user sees it: the ``tray`` object of the daemon's ``status`` reply
    (docs/PROTOCOL.md), read by `freight status` and `freight doctor`."""
    return {
        "shown": shown,
        "backend": backend if shown else None,
        "menu": shown and backend in MENU_BACKENDS,
        "reason": reason,
    }


def probe_report(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a daemon started now with ``environ`` would show (for `doctor` without a daemon)."""
    ok, reason, backend = available(environ=environ)
    return report(ok, backend, reason)


def available(
    backend: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[bool, str, str | None]:
    """Can a tray icon be shown here? ``(ok, reason, backend)``, for the daemon and `doctor`.

    ``backend`` forces one (like ``PYSTRAY_BACKEND``, which wins when ``backend`` is None).
    ``environ`` is read for the variables; the GTK and X probes open this process's display.
    Nothing is imported from pystray here, and nothing is shown.
    """
    env = os.environ if environ is None else environ
    forced = backend or env.get("PYSTRAY_BACKEND") or None
    if forced is not None and forced not in ALL_BACKENDS:
        return False, f"unknown tray backend {forced!r} (one of {', '.join(ALL_BACKENDS)})", None
    if sys.platform in ("darwin", "win32") and forced is None:
        return True, f"{sys.platform} backend", sys.platform
    has_x = bool(env.get("DISPLAY"))
    if not has_x and not env.get("WAYLAND_DISPLAY"):
        return False, "no display (DISPLAY and WAYLAND_DISPLAY are unset)", None
    if forced is not None:
        origin = "asked for" if backend else "PYSTRAY_BACKEND"
        if forced in GTK_BACKENDS:
            ok, why = _probe_gtk(appindicator=forced == "appindicator")
            if not ok:
                return False, f"{forced} backend ({origin}) cannot start: {why}", forced
        elif forced == "xorg":
            ok, why = _probe_x()
            if not ok:
                return False, f"xorg backend ({origin}) cannot start: {why}", forced
        return True, f"{forced} backend ({origin}){_host_note(env)}", forced
    ok, why = _probe_gtk(appindicator=True)
    if ok:
        return True, f"appindicator backend (PyGObject){_host_note(env)}", "appindicator"
    gtk_ok, _ = _probe_gtk(appindicator=False)
    if gtk_ok:
        return True, f"gtk backend (no AppIndicator typelib: {why}){_host_note(env)}", "gtk"
    if has_x:
        x_ok, x_why = _probe_x()
        if x_ok:
            return (
                True,
                f"xorg backend, patched for clicks and docking; no menu (PyGObject: {why}; "
                f"`freight doctor` says what to install for a menu){_host_note(env)}",
                "xorg",
            )
        return False, f"no tray: PyGObject: {why}; X: {x_why}", None
    return False, f"no tray: Wayland without PyGObject ({why})", None


def _probe_gtk(*, appindicator: bool) -> tuple[bool, str]:
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk

        if not Gtk.init_check()[0]:
            return False, "Gtk could not be initialised on this display"
        if appindicator:
            for name in ("AppIndicator3", "AyatanaAppIndicator3"):
                try:
                    gi.require_version(name, "0.1")
                    return True, name
                except ValueError:
                    continue
            return False, "no AppIndicator3 or AyatanaAppIndicator3 typelib"
        return True, "Gtk 3"
    except Exception as exc:  # ImportError, ValueError from require_version, GLib errors
        return False, f"{type(exc).__name__}: {exc}"


def _probe_x() -> tuple[bool, str]:
    try:
        import Xlib.display

        Xlib.display.Display().close()
        return True, "X display"
    except Exception as exc:  # Xlib raises its own errors, not OSError, when there is no X
        return False, f"{type(exc).__name__}: {exc}"


def _host_note(env: Mapping[str, str]) -> str:
    """Say when no XEmbed tray host runs: the icon appears once one starts."""
    if not env.get("DISPLAY"):
        return ""
    try:
        import Xlib.display

        display = Xlib.display.Display()
        try:
            atom = display.intern_atom(f"_NET_SYSTEM_TRAY_S{display.get_default_screen()}")
            owner = display.get_selection_owner(atom)
        finally:
            display.close()
    except Exception:
        return ""
    return "" if owner else "; no XEmbed tray host on this display yet"


def _import_backend(name: str) -> Any:
    """Import pystray with ``name`` chosen, and return that backend's module.

    pystray picks its backend once, while its package is imported, from PYSTRAY_BACKEND; we
    set the variable for that import only, so the choice is ours and children are untouched.
    """
    if "pystray" not in sys.modules:
        before = os.environ.get("PYSTRAY_BACKEND")
        os.environ["PYSTRAY_BACKEND"] = name
        try:
            importlib.import_module("pystray")
        finally:
            if before is None:
                os.environ.pop("PYSTRAY_BACKEND", None)
            else:
                os.environ["PYSTRAY_BACKEND"] = before
    return importlib.import_module(f"pystray._{name}")


def icon_class(name: str) -> Any:
    """pystray's icon class of backend ``name``, with our fixes for the gtk and xorg ones."""
    module = _import_backend(name)
    if name in GTK_BACKENDS:
        return _gtk_icon_class(module.Icon)
    if name == "xorg":
        return _xorg_icon_class(module.Icon)
    return module.Icon


def _gtk_icon_class(base: Any) -> Any:
    from gi.repository import GLib

    class FreightGtkIcon(base):  # type: ignore[misc, valid-type]
        def _initialize(self) -> None:
            # pystray resets SIGINT to SIG_DFL here, which would kill the daemon on Ctrl+C
            # without its staged shutdown: put the daemon's handler back (main thread).
            previous = signal.getsignal(signal.SIGINT)
            super()._initialize()
            if threading.current_thread() is threading.main_thread() and previous is not None:
                signal.signal(signal.SIGINT, previous)
            # CPython runs a signal handler only when the main thread runs Python code; the
            # GLib loop sleeps in C. A tick keeps SIGINT/SIGTERM handlers prompt.
            GLib.timeout_add(250, lambda: True)

        def _show(self) -> None:
            super()._show()
            # The gtk backend applies the title only on a later change: apply it now.
            self._update_title()

        def _update_title(self) -> None:
            super()._update_title()
            status_icon = getattr(self, "_status_icon", None)  # the gtk backend's XEmbed icon
            if status_icon is not None:
                title = self.title

                def tooltip() -> bool:
                    status_icon.set_tooltip_text(title)
                    return False  # run once

                GLib.idle_add(tooltip)

    return FreightGtkIcon


def _xorg_icon_class(base: Any) -> Any:
    """pystray 0.19.5's xorg backend with the two fixes measured in the notes (60/60 docks),
    and two of ours.

    - ``_create_window`` never selects ButtonPressMask, so clicks never arrive (upstream
      issue #151): select it.
    - ``_assert_docked`` sends a new dock request on every ``_show`` and ``_update_icon``;
      the second request at start races the first and 10–25 % of starts never dock, and
      every icon update re-docks. Dock once per tray manager (a new manager after the old
      one dies still docks: ``_on_destroy_notify`` clears ``_systray_manager`` first).
    - The title is written as Latin-1 only, which fails on "—": see ``_set_names``.
    - ``_assert_icon_data`` scales the image with LANCZOS; we draw it at the window's size
      instead, so it stays sharp.
    """
    import Xlib.X

    class FreightXorgIcon(base):  # type: ignore[misc, valid-type]
        #: Set by Tray: draws the current state at a given size.
        freight_render: Callable[[int], Any] | None = None

        def _create_window(self) -> Any:
            title, self._title = self._title, _latin1(self._title)
            try:
                window = super()._create_window()
            finally:
                self._title = title
            window.change_attributes(
                event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask
            )
            self._set_names(window)
            return window

        def _update_title(self) -> None:
            self._set_names(self._window)

        def _set_names(self, window: Any) -> None:
            # pystray writes the title as WM_NAME, a Latin-1 STRING, and fails on "—".
            # Write WM_NAME in Latin-1 and the real title as EWMH _NET_WM_NAME (UTF8_STRING).
            window.set_wm_name(_latin1(self.title))
            window.change_property(
                self._display.intern_atom("_NET_WM_NAME"),
                self._display.intern_atom("UTF8_STRING"),
                8,
                self.title.encode("utf-8"),
            )

        def _assert_docked(self) -> None:
            if not self._systray_manager:
                self._dock_window()
            assert self._systray_manager

        def _assert_icon_data(self, width: int, height: int) -> None:
            render = self.freight_render
            if render is None or min(width, height) < tray_icon.MIN_SIZE:
                super()._assert_icon_data(width, height)
                return
            if self._icon_data and self._icon_data.size == (width, height):
                return
            from PIL import Image

            size = min(width, height, tray_icon.MAX_SIZE)
            data = Image.new("RGB", (width, height), (0, 0, 0))
            image = render(size)
            data.paste(image, ((width - size) // 2, (height - size) // 2), image)
            data.tostring = data.tobytes  # what pystray's put_pil_image call expects
            self._icon_data = data

    return FreightXorgIcon


def _latin1(text: str) -> str:
    return text.replace("—", "-").encode("latin-1", "replace").decode("latin-1")
