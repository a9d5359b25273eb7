"""The capture rules are daemon settings (docs/ARCHITECTURE.md "Capture rules"): their checks,
their text forms for `freight settings`, and the ``settings.changed`` event that carries a
change to every browser, against a real daemon process and the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemonproc import DaemonProcess
from freight import config
from freight.errors import InputError
from freight.store import Store

RULES = ("capture", "capture_min_size", "capture_always_types", "capture_never_types",
         "capture_never_sites", "notify")


def test_every_capture_rule_is_a_setting_with_the_documented_default() -> None:
    defaults = config.defaults()
    assert {name: defaults[name] for name in RULES} == {
        "capture": True, "capture_min_size": 0, "capture_always_types": [],
        "capture_never_types": [], "capture_never_sites": [], "notify": True,
    }


@pytest.mark.parametrize(("name", "given", "kept"), [
    ("capture_never_types", [" .ISO ", "*.Exe", "Video/*", "", "iso"], ["iso", "exe", "video/*"]),
    ("capture_always_types", ["zip", "ZIP", "  "], ["zip"]),
    ("capture_never_sites", [" example.com ", "*.Bank.test", "https://x.org/private/*", ""],
     ["example.com", "*.Bank.test", "https://x.org/private/*"]),
    ("capture_min_size", 2_000_000, 2_000_000),
    ("capture_min_size", 0, 0),
])
def test_capture_rules_are_normalised_as_the_extension_reads_them(
    name: str, given: object, kept: object
) -> None:
    assert config.validate_setting(name, given) == kept


@pytest.mark.parametrize(("name", "value", "says"), [
    ("capture", "off", "must be bool"),
    ("capture", 1, "must be bool"),
    ("capture_min_size", -1, ">= 0"),
    ("capture_min_size", 1.5, "must be int"),
    ("capture_min_size", True, "must be int"),
    ("capture_min_size", 2**53, "<="),
    ("capture_never_types", "iso", "list of strings"),
    ("capture_never_types", ["iso zip"], "one type per entry"),
    ("capture_never_sites", ["a.test,b.test"], "one site per entry"),
    ("capture_never_sites", ["x" * 2049], "longer than"),
    ("capture_always_types", [f"t{i}" for i in range(1001)], "more than 1000 entries"),
    ("capture_never_sites", ["s" * 2000 + str(i) for i in range(9)], "16384 characters in all"),
])
def test_bad_capture_rules_are_refused_with_a_clear_message(
    name: str, value: object, says: str
) -> None:
    with pytest.raises(InputError, match=says):
        config.validate_setting(name, value)


def test_a_bad_rule_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db")
    try:
        with pytest.raises(InputError):
            store.set_settings({"capture": False, "capture_never_sites": ["a b"]})
        assert store.settings()["capture"] is True  # all or nothing
    finally:
        store.close()


@pytest.mark.parametrize(("name", "text", "value"), [
    ("capture", "off", False), ("capture", "ON", True), ("capture", "false", False),
    ("notify", "no", False), ("capture_min_size", "2000000", 2_000_000),
    ("capture_never_sites", "example.com, *.bank.test", ["example.com", "*.bank.test"]),
    ("capture_never_types", '["iso"]', ["iso"]), ("capture_never_types", "", []),
    ("download_dir", "/tmp/x y", "/tmp/x y"), ("global_limit", "null", None),
])
def test_setting_from_text_reads_what_a_user_types(name: str, text: str, value: object) -> None:
    assert config.setting_from_text(name, text) == value


def test_cli_change_is_published_to_subscribers_with_what_changed(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as watcher:
        watcher.call("subscribe", events=["settings.changed"])
        done = daemon.cli("settings", "capture", "off")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "capture = false"
        daemon.cli("settings", "capture_never_types", ".ISO exe")
        events = [p for e, p in watcher.notifications(timeout=1.0) if e == "settings.changed"]
    assert [e["changed"] for e in events] == [
        {"capture": False}, {"capture_never_types": ["iso", "exe"]}]
    assert events[-1]["settings"]["capture"] is False
    assert events[-1]["settings"]["capture_never_types"] == ["iso", "exe"]
    shown = daemon.cli("settings").stdout
    assert "capture = false" in shown and 'capture_never_types = ["iso", "exe"]' in shown


def test_cli_refuses_a_bad_rule_and_keeps_the_old_one(daemon: DaemonProcess) -> None:
    bad = daemon.cli("settings", "capture", "maybe")
    assert bad.returncode != 0
    assert "capture" in bad.stderr and "bool" in bad.stderr
    assert daemon.cli("settings", "capture").stdout.strip() == "true"
