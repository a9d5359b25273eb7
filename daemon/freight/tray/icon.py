"""The tray icon: a thin pystray layer over :mod:`freight.tray.model`.

Theory of operation::

    main thread:  Tray.run() ── pystray icon.run() ── GLib / X event loop ── menu callbacks
    poll thread:  every second: controller.snapshot() → image, title, menu → pystray
    daemon loop:  TrayController methods hop onto it with asyncio.run_coroutine_threadsafe

The tray never blocks on the daemon: every :class:`TrayController` call returns at once.
pystray wants its loop on the main thread (macOS insists), so the daemon runs asyncio in a
worker thread while the tray is up (../shared/notes/tray-keyring-websockets.md). Which
backend shows the icon, and pystray's backends with our fixes: :mod:`freight.tray.backends`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from freight.config import parse_rate
from freight.errors import FreightError, InputError
from freight.tray import model as tray_icon
from freight.tray.backends import ALL_BACKENDS, GTK_BACKENDS, available, icon_class, report
from freight.tray.model import Action, MenuEntry, TraySnapshot

__all__ = ["Tray", "TrayController", "TraySnapshot", "available"]

log = logging.getLogger("freight.tray")

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
    def clear_completed(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Choosing a backend


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
        self._shown_report: dict[str, Any] = {}
        # What the user sees, for the daemon's `status`: replaced whole (atomic for readers).
        self._report = report(False, None, "the tray is starting")

    def report(self) -> dict[str, Any]:
        """The tray as a user sees it (``status``'s ``tray``, docs/PROTOCOL.md); any thread."""
        return dict(self._report)

    # -- life cycle ---------------------------------------------------------------------------

    def run(self) -> bool:
        """Show the icon and serve it until :meth:`stop`. False (said once) if no tray here."""
        global _said_unavailable
        ok, reason, backend = available(self._backend)
        if not ok or backend is None:
            self._report = report(False, None, reason)
            if not _said_unavailable:
                log.warning("no tray icon: %s", reason)
                _said_unavailable = True
            return False
        if self._stopping.is_set():
            return True
        try:
            icon_cls = icon_class(backend)
        except Exception as exc:  # pystray and Xlib raise their own errors on a broken display
            log.warning("no tray icon: the %s backend failed to load: %s", backend, exc)
            self._report = report(False, None, f"the {backend} backend failed to load: {exc}")
            return False
        self.backend = backend
        self._shown_report = report(True, backend, reason)
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
                self._report = report(False, None, "the tray icon failed (see freight.log)")
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
        self._report = self._shown_report  # the icon's loop runs: it is on screen
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
        elif kind == "clear_completed":
            c.clear_completed()
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
