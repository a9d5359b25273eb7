"""The tray icon: a thin pystray layer over :mod:`freight.tray_icon`.

Theory of operation::

    main thread:  Tray.run() ── pystray icon.run() ── GLib / X event loop ── menu callbacks
    poll thread:  every second: controller.snapshot() → image, title, menu → pystray
    daemon loop:  TrayController methods hop onto it with asyncio.run_coroutine_threadsafe

The tray never blocks on the daemon: every :class:`TrayController` call returns at once.
pystray wants its loop on the main thread (macOS insists), so the daemon runs asyncio in a
worker thread while the tray is up (../shared/notes/tray-keyring-websockets.md).

Backends, in order of preference: ``PYSTRAY_BACKEND`` when set; ``appindicator`` (a
StatusNotifierItem on modern desktops, an XEmbed icon elsewhere) or ``gtk`` (XEmbed) where
PyGObject works (``pip install 'freight[tray-gtk]'``); else ``xorg`` (python-xlib) with the
fixes in :func:`_xorg_icon_class`. pystray is imported lazily: without a display its import
raises Xlib errors instead of ImportError, so :func:`available` checks first.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from freight.config import parse_rate
from freight.errors import FreightError, InputError
from freight.tray import model as tray_icon
from freight.tray.model import Action, MenuEntry, TraySnapshot

__all__ = ["Tray", "TrayController", "TraySnapshot", "available"]

log = logging.getLogger("freight.tray")

#: Backends pystray knows on each platform, in our order of preference.
LINUX_BACKENDS = ("appindicator", "gtk", "xorg")
ALL_BACKENDS = (*LINUX_BACKENDS, "darwin", "win32")
GTK_BACKENDS = ("appindicator", "gtk")
ICON_SIZE = 64  # drawn at this size for backends that scale a file themselves
POLL_INTERVAL = 1.0  # seconds; the issue asks for at most one redraw a second


class TrayController(Protocol):
    """What the tray asks of the daemon. Every method is thread-safe and returns at once
    (the daemon forwards to its loop with ``asyncio.run_coroutine_threadsafe``)."""

    def snapshot(self) -> TraySnapshot: ...
    def pause_all(self) -> None: ...
    def resume_all(self) -> None: ...
    def set_global_limit(self, bytes_per_s: int | None) -> None: ...
    def set_capture(self, enabled: bool) -> None: ...
    def add_url(self, url: str) -> None: ...
    def open_download(self, download_id: int) -> None: ...
    def open_folder(self) -> None: ...
    def quit(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Choosing a backend


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
                f"install freight[tray-gtk] for a menu){_host_note(env)}",
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


def _icon_class(name: str) -> Any:
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


# --------------------------------------------------------------------------------------------
# The tray

_said_unavailable = False


class Tray:
    """``Tray(controller).run()`` blocks on the main thread until :meth:`stop`.

    The tray does not stop itself on Quit: it calls ``controller.quit()``, and the daemon's
    staged shutdown calls :meth:`stop`.
    """

    def __init__(
        self,
        controller: TrayController,
        *,
        backend: str | None = None,
        poll_interval: float = POLL_INTERVAL,
        presets: tuple[int, ...] = tray_icon.LIMIT_PRESETS,
    ) -> None:
        if backend is not None and backend not in ALL_BACKENDS:
            raise InputError(f"unknown tray backend {backend!r}", backend=backend)
        if not poll_interval > 0:
            raise InputError(f"poll interval must be positive: {poll_interval!r}")
        self._controller = controller
        self._backend = backend
        self._interval = poll_interval
        self._presets = presets
        self._stopping = threading.Event()
        # Guards the hand-over of stop() between the caller and the poll thread (see _poll).
        self._stop_lock = threading.Lock()
        self._loop_ready = False
        self._icon: Any = None
        self.backend: str | None = None  # the one in use once run() started
        self._snap = TraySnapshot()
        self._shown_image: bytes | None = None
        self._shown_model: tuple[MenuEntry, ...] | None = None
        self._snapshot_failed = False

    # -- life cycle ---------------------------------------------------------------------------

    def run(self) -> bool:
        """Show the icon and serve it until :meth:`stop`. False (said once) if no tray here."""
        global _said_unavailable
        ok, reason, backend = available(self._backend)
        if not ok or backend is None:
            if not _said_unavailable:
                log.warning("no tray icon: %s", reason)
                _said_unavailable = True
            return False
        if self._stopping.is_set():
            return True
        try:
            icon_cls = _icon_class(backend)
        except Exception as exc:  # pystray and Xlib raise their own errors on a broken display
            log.warning("no tray icon: the %s backend failed to load: %s", backend, exc)
            return False
        self.backend = backend
        log.info("tray icon: %s", reason)
        self._snap = self._read_snapshot()
        model = self._model(self._snap)
        self._icon = icon_cls(
            "freight",
            tray_icon.render(self._snap, ICON_SIZE),
            tray_icon.title(self._snap),
            menu=self._pystray_menu(model),
        )
        self._shown_model = model
        self._shown_image = self._icon.icon.tobytes()
        if backend == "xorg":
            snap_ref = self
            self._icon.freight_render = lambda size: tray_icon.render(snap_ref._snap, size)
        try:
            self._icon.run(setup=self._poll)
        except Exception:
            # After stop(), the gtk backends' run() may raise a GLib error when no
            # notification service exists (headless sessions): that is a normal end.
            if not self._stopping.is_set():
                raise
            log.debug("tray loop ended with an error after stop", exc_info=True)
        return True

    def stop(self) -> None:
        """Thread-safe; returns once the poll thread has ended (at most a few seconds)."""
        with self._stop_lock:
            self._stopping.set()
            icon = self._icon if self._loop_ready else None
        if icon is not None:
            self._stop_icon(icon)

    @staticmethod
    def _stop_icon(icon: Any) -> None:
        try:
            icon.stop()
        except Exception:
            log.debug("error while stopping the tray icon", exc_info=True)

    # -- the poll thread ----------------------------------------------------------------------

    def _poll(self, icon: Any) -> None:
        # pystray's icon.stop() does nothing until the icon's loop has marked itself ready,
        # and this thread starts only after that. A stop() that came earlier (the daemon
        # stopped while the icon was being built) would be lost, and the main thread would
        # serve the icon forever after the daemon is gone: from here on stop() stops the
        # icon itself; before, it only sets the flag and this thread stops the icon. Exactly
        # one of the two calls icon.stop(): a second one deadlocks the xorg backend.
        with self._stop_lock:
            self._loop_ready = True
            stopped_early = self._stopping.is_set()
        if stopped_early:
            self._stop_icon(icon)
            return
        icon.visible = True
        while not self._stopping.wait(self._interval):
            try:
                self.refresh()
            except Exception:
                log.exception("tray refresh failed")

    def refresh(self) -> None:
        """Read a snapshot and update what changed (called by the poll thread)."""
        snap = self._read_snapshot()
        self._snap = snap
        icon = self._icon
        if icon is None:
            return
        image = tray_icon.render(snap, ICON_SIZE)
        data = image.tobytes()
        if data != self._shown_image:
            self._shown_image = data
            icon.icon = image
        icon.title = tray_icon.title(snap)  # pystray only redraws on a change
        model = self._model(snap)
        if model != self._shown_model:
            self._show_menu(model)

    def _read_snapshot(self) -> TraySnapshot:
        try:
            snap = self._controller.snapshot()
        except Exception:
            if not self._snapshot_failed:
                log.exception("the daemon gave the tray no snapshot; showing the last one")
                self._snapshot_failed = True
            return self._snap
        self._snapshot_failed = False
        return snap

    # -- the menu -----------------------------------------------------------------------------

    def _model(self, snap: TraySnapshot) -> tuple[MenuEntry, ...]:
        return tray_icon.menu_model(
            snap, presets=self._presets, can_prompt=self.backend in GTK_BACKENDS
        )

    def _show_menu(self, model: tuple[MenuEntry, ...]) -> None:
        if self.backend not in GTK_BACKENDS:
            self._shown_model = model
            self._icon.menu = self._pystray_menu(model)
            return
        from gi.repository import GLib

        def apply() -> bool:
            # On the GTK thread. Rebuilding a menu while it is open would pull it from under
            # the user's pointer: leave it, the next poll tries again.
            handle = getattr(self._icon, "_menu_handle", None)
            if handle is not None and handle.get_visible():
                return False
            self._shown_model = model
            self._icon.menu = self._pystray_menu(model)
            return False

        GLib.idle_add(apply)

    def _pystray_menu(self, entries: tuple[MenuEntry, ...]) -> Any:
        import pystray

        def build(items: tuple[MenuEntry, ...]) -> list[Any]:
            out: list[Any] = []
            for entry in items:
                if entry.separator:
                    out.append(pystray.Menu.SEPARATOR)
                    continue
                extra: dict[str, Any] = {"enabled": entry.enabled, "default": entry.default}
                if entry.checked is not None:
                    extra["checked"] = lambda _item, value=entry.checked: value
                    extra["radio"] = entry.radio
                if entry.submenu:
                    action: Any = pystray.Menu(*build(entry.submenu))
                else:
                    action = self._callback(entry.action)
                out.append(pystray.MenuItem(entry.text, action, **extra))
            return out

        return pystray.Menu(*build(entries))

    def _callback(self, action: Action | None) -> Callable[[Any, Any], None]:
        def activated(_icon: Any, _item: Any) -> None:
            if action is None:
                return
            try:
                self.dispatch(action)
            except FreightError as exc:
                log.warning("tray: %s", exc)
                self._tell(str(exc))
            except Exception:
                log.exception("tray: %s failed", action.kind)

        return activated

    def dispatch(self, action: Action) -> None:
        """Carry out a menu action (on the tray's thread)."""
        c = self._controller
        kind = action.kind
        if kind == "pause_all":
            c.pause_all()
        elif kind == "resume_all":
            c.resume_all()
        elif kind == "set_global_limit":
            c.set_global_limit(action.arg)
        elif kind == "prompt_global_limit":
            text = self._ask_text("Freight — speed limit", "Limit for all downloads (500K, 2M):")
            if text is not None:
                c.set_global_limit(None if text.strip() in ("", "0") else parse_rate(text))
        elif kind == "set_capture":
            c.set_capture(bool(action.arg))
        elif kind == "open_download":
            c.open_download(action.arg)
        elif kind == "open_folder":
            c.open_folder()
        elif kind == "add_from_clipboard":
            c.add_url(tray_icon.clipboard_url(self.read_clipboard()))
        elif kind == "quit":
            c.quit()
        else:
            raise InputError(f"unknown tray action {kind!r}")

    # -- talking to the desktop ---------------------------------------------------------------

    def read_clipboard(self) -> str | None:
        """The clipboard's text: through GTK where it runs, else wl-paste, xclip or xsel."""
        if self.backend in GTK_BACKENDS:
            try:
                from gi.repository import Gdk, Gtk

                text = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD).wait_for_text()
                return str(text) if text is not None else None
            except Exception:
                log.debug("GTK clipboard failed; trying the command line tools", exc_info=True)
        return read_clipboard_command()

    def _ask_text(self, title: str, prompt: str) -> str | None:
        if self.backend not in GTK_BACKENDS:
            raise InputError("this tray backend cannot ask for text; use `freight limit`")
        from gi.repository import Gtk

        dialog = Gtk.Dialog(title=title)
        dialog.add_buttons("Cancel", Gtk.ResponseType.CANCEL, "Set", Gtk.ResponseType.OK)
        dialog.set_default_response(Gtk.ResponseType.OK)
        entry = Gtk.Entry(activates_default=True)
        box = dialog.get_content_area()
        box.set_spacing(6)
        box.add(Gtk.Label(label=prompt))
        box.add(entry)
        dialog.show_all()
        try:
            return str(entry.get_text()) if dialog.run() == Gtk.ResponseType.OK else None
        finally:
            dialog.destroy()

    def _tell(self, message: str) -> None:
        """Show a short message where the backend can (a notification); never fails."""
        icon = self._icon
        if icon is None or not getattr(icon, "HAS_NOTIFICATION", False):
            return
        try:
            icon.notify(message, "Freight")
        except Exception:
            log.debug("no notification shown", exc_info=True)


def read_clipboard_command(environ: Mapping[str, str] | None = None) -> str | None:
    """Read the clipboard with the first tool present; None if none is, or it fails."""
    env = os.environ if environ is None else environ
    commands: list[list[str]] = []
    if env.get("WAYLAND_DISPLAY"):
        commands.append(["wl-paste", "--no-newline"])
    if env.get("DISPLAY"):
        commands += [["xclip", "-selection", "clipboard", "-o"], ["xsel", "--clipboard", "-o"]]
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        try:
            done = subprocess.run(command, capture_output=True, timeout=2, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return done.stdout.decode("utf-8", "replace")
    return None
