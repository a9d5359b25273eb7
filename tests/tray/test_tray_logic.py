"""The tray layer without a display: backend choice, no-display behaviour, menu dispatch."""

from __future__ import annotations

import logging

import pytest
from freight.errors import InputError
from freight.tray import icon as tray
from freight.tray.icon import Tray, TraySnapshot, available
from freight.tray.model import Action


class Recorder:
    """A controller that records calls (the TrayController protocol)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def snapshot(self) -> TraySnapshot:
        self.calls.append(("snapshot", ()))
        return TraySnapshot(active=1)

    def __getattr__(self, name: str):  # pause_all, resume_all, set_global_limit, ...
        if name not in {
            "pause_all", "resume_all", "set_global_limit", "set_capture", "add_url",
            "open_download", "open_folder", "quit", "clear_completed",
        }:
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))


@pytest.fixture
def headless(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "PYSTRAY_BACKEND"):
        monkeypatch.delenv(name, raising=False)


def test_no_display_means_no_tray(headless):
    ok, reason, backend = available()
    assert (ok, backend) == (False, None)
    assert "no display" in reason


def test_unknown_backends_are_refused(headless, monkeypatch):
    ok, reason, _ = available("carrier-pigeon")
    assert not ok and "unknown tray backend 'carrier-pigeon'" in reason
    monkeypatch.setenv("PYSTRAY_BACKEND", "nope")
    assert available()[0] is False
    with pytest.raises(InputError):
        Tray(Recorder(), backend="carrier-pigeon")
    with pytest.raises(InputError):
        Tray(Recorder(), poll_interval=0)


def test_run_without_display_returns_false_and_says_so_once(headless, monkeypatch, caplog):
    monkeypatch.setattr(tray, "_said_unavailable", False)
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="freight.tray"):
        assert Tray(recorder).run() is False
        assert Tray(recorder).run() is False
    said = [r.getMessage() for r in caplog.records if "no tray icon" in r.getMessage()]
    assert len(said) == 1 and "no display" in said[0]
    assert recorder.calls == []  # nothing asked of the daemon


@pytest.mark.parametrize(
    ("action", "call"),
    [
        (Action("pause_all"), ("pause_all", ())),
        (Action("resume_all"), ("resume_all", ())),
        (Action("set_global_limit", 1024), ("set_global_limit", (1024,))),
        (Action("set_global_limit", None), ("set_global_limit", (None,))),
        (Action("set_capture", False), ("set_capture", (False,))),
        (Action("open_download", 7), ("open_download", (7,))),
        (Action("open_folder"), ("open_folder", ())),
        (Action("quit"), ("quit", ())),
        (Action("clear_completed"), ("clear_completed", ())),
    ],
)
def test_menu_actions_reach_the_controller(action, call):
    recorder = Recorder()
    Tray(recorder).dispatch(action)
    assert recorder.calls == [call]


def test_unknown_action_is_refused_and_changes_nothing():
    recorder = Recorder()
    with pytest.raises(InputError, match="unknown tray action"):
        Tray(recorder).dispatch(Action("format_disk"))
    assert recorder.calls == []


def test_add_from_clipboard_without_a_clipboard_adds_nothing(headless):
    recorder = Recorder()
    with pytest.raises(InputError, match="clipboard is empty"):
        Tray(recorder).dispatch(Action("add_from_clipboard"))
    assert recorder.calls == []


def test_add_from_clipboard_adds_the_url(monkeypatch):
    recorder = Recorder()
    t = Tray(recorder)
    monkeypatch.setattr(t, "read_clipboard", lambda: " https://example.test/x.iso\n")
    t.dispatch(Action("add_from_clipboard"))
    assert recorder.calls == [("add_url", ("https://example.test/x.iso",))]
    monkeypatch.setattr(t, "read_clipboard", lambda: "hello world")
    with pytest.raises(InputError):
        t.dispatch(Action("add_from_clipboard"))
    assert len(recorder.calls) == 1


def test_prompt_needs_a_gtk_backend():
    recorder = Recorder()
    with pytest.raises(InputError, match="cannot ask"):
        Tray(recorder).dispatch(Action("prompt_global_limit"))
    assert recorder.calls == []


def test_clipboard_commands_need_a_session(headless):
    assert tray.read_clipboard_command({}) is None
