"""The CLI's words: errors name the flag the user typed and what would work, actions say what
they did, `ls` keeps the extension, `-d` to a missing folder is refused unless only its last
level is missing (then it is created and said so), help and README say the code's numbers."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from daemonproc import DaemonProcess, wait_for  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from freight import config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("words") / "home").start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


@pytest.mark.parametrize(("argv", "flag", "hint"), [
    (["-x", "0"], "-x/--connections", "1 to 64"),
    (["-x", "65"], "-x/--connections", "1 to 64"),
    (["--limit", "-5M"], "--limit", "500K"),
    (["--limit", "fast"], "--limit", "500K"),
])
def test_add_errors_name_the_flag(daemon: DaemonProcess, argv: list[str], flag: str,
                                  hint: str) -> None:
    out = daemon.cli("add", "http://127.0.0.1:9/f.bin", *argv)
    assert out.returncode == 2, out.stderr
    assert flag in out.stderr and hint in out.stderr, out.stderr
    assert "param" not in out.stderr and "expected one argument" not in out.stderr


@pytest.mark.parametrize("argv", [["-x", "0"], ["--limit", "-5M"]])
def test_get_errors_name_the_flag(daemon: DaemonProcess, argv: list[str]) -> None:
    out = daemon.cli("get", "http://127.0.0.1:9/f.bin", *argv)
    assert out.returncode == 2, out.stderr
    assert argv[0] in out.stderr and "expected one argument" not in out.stderr, out.stderr


@pytest.mark.parametrize("command", ["add", "get"])
def test_a_bad_url_is_named_as_the_url(daemon: DaemonProcess, command: str) -> None:
    out = daemon.cli(command, "ftp://example.com/f.bin")
    assert out.returncode == 2, out.stderr
    assert "param" not in out.stderr and "URL" in out.stderr and "http" in out.stderr, out.stderr


def test_a_missing_folder_is_refused(daemon: DaemonProcess, tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such"
    for command in ("add", "get"):
        out = daemon.cli(command, "-d", str(folder), "http://127.0.0.1:9/f.bin")
        assert out.returncode == 2, out.stderr
        assert "-d/--dir" in out.stderr and "mkdir -p" in out.stderr, out.stderr
        assert not (tmp_path / "no").exists()


def test_a_missing_last_folder_is_created_and_said(daemon: DaemonProcess,
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "new"
    out = daemon.cli("add", "--paused", "-d", str(folder), "http://127.0.0.1:9/f.bin")
    assert out.returncode == 0, out.stderr
    assert folder.is_dir() and f"created folder {folder}" in out.stderr


def test_actions_say_what_they_did(daemon: DaemonProcess, tmp_path: Path) -> None:
    with FaultServer() as server:
        url = server.add("/movie.mkv", b"x" * 1000)
        out = daemon.cli("add", "-d", str(tmp_path), url)
        assert out.returncode == 0, out.stderr
        download_id = int(out.stdout.split()[0])
        wait_for(lambda: (tmp_path / "movie.mkv").exists())
        wait_for(lambda: "completed" in daemon.cli("ls", "--state", "completed").stdout)
        out = daemon.cli("pause", str(download_id))
        assert out.returncode == 2 and "cannot go from completed to paused" in out.stderr
        out = daemon.cli("rm", str(download_id))
        assert out.stdout.strip() == f"removed {download_id}: movie.mkv", out.stdout
        out = daemon.cli("rm", str(download_id))
        assert out.returncode == 2 and "freight ls" in out.stderr, out.stderr


def test_ls_keeps_the_extension(daemon: DaemonProcess, tmp_path: Path) -> None:
    name = "a-very-long-name-of-a-holiday-film-" + "x" * 80 + ".mkv"
    out = daemon.cli("add", "--paused", "-d", str(tmp_path), f"http://127.0.0.1:9/{name}")
    assert out.returncode == 0, out.stderr
    download_id = out.stdout.split()[0]
    daemon.env["COLUMNS"] = "70"
    try:
        out = daemon.cli("ls")
    finally:
        del daemon.env["COLUMNS"]
    line = next(line for line in out.stdout.splitlines() if line.split()[0] == download_id)
    assert line.rstrip().endswith(".mkv") and len(line.rstrip()) <= 70, out.stdout


def test_help_and_readme_say_the_adaptive_numbers(daemon: DaemonProcess) -> None:
    start = config.SETTINGS["connections"].default
    top = config.SETTINGS["max_connections"].default
    help_text = " ".join(daemon.cli("get", "--help").stdout.split())
    assert f"from {start} up to {top}" in help_text, help_text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"starts with {start}, tries {top}" in readme
    assert not re.search(r"adaptive[^.]*\b8\b", help_text)


def test_get_names_a_nameless_url_from_its_type(daemon: DaemonProcess, tmp_path: Path) -> None:
    with FaultServer() as server:
        url = server.add("/", b"<html></html>", content_type="text/html; charset=utf-8")
        out = daemon.cli("get", "-q", "-d", str(tmp_path), url)
        assert out.returncode == 0, out.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["download.html"]


def test_the_board_keeps_the_extension() -> None:
    from freight.cli.board import crop_middle, frame

    name = "holiday-" + "x" * 200 + ".part07.mkv"
    assert crop_middle(name, 30).endswith(".mkv") and len(crop_middle(name, 30)) == 30
    row = {"id": 1, "state": "queued", "name": name, "done": 0, "size": None}
    assert all(len(line) <= 80 for line in frame([row], 10, 80))
    assert any(line.endswith(".mkv") for line in frame([row], 10, 80))


def test_a_size_setting_takes_and_says_units(daemon: DaemonProcess) -> None:
    out = daemon.cli("settings", "capture_min_size", "1M")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "capture_min_size = 1048576 (1.0 MiB)", out.stdout
    assert daemon.cli("settings", "capture_min_size").stdout.strip() == "1048576"
    out = daemon.cli("settings", "capture_min_size", "0")
    assert out.stdout.strip() == "capture_min_size = 0", out.stdout
    out = daemon.cli("settings", "capture_min_size", "lots")
    assert out.returncode == 2 and "10M" in out.stderr, out.stderr
