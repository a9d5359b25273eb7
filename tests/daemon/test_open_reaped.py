"""`open` / "Show in folder" against a real daemon process and a stand-in `xdg-open` on PATH:
the opener the daemon starts is reaped when it exits (no defunct child stays under the
daemon), and a missing opener is a clear error that changes nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from daemonproc import DaemonProcess
from freight.errors import FreightError

OPENER = """#!/bin/sh
echo "$@" >> "{log}"
exit 0
"""


def children(pid: int) -> list[tuple[int, str, str]]:
    """(pid, command name, state letter) of every child process of ``pid``, zombies too."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == pid:
            found.append((int(entry.name), comm, state))
    return found


def start_daemon(tmp_path: Path, path: str) -> DaemonProcess:
    daemon = DaemonProcess(tmp_path / "home")
    daemon.env["PATH"] = path
    return daemon.start()


def paused_download(daemon: DaemonProcess, folder: Path) -> int:
    folder.mkdir(exist_ok=True)
    client = daemon.client()
    try:
        return int(client.call("add", url="http://127.0.0.1:9/file.bin", dir=str(folder),
                               paused=True)["id"])
    finally:
        client.close()


def test_show_in_folder_leaves_no_defunct_opener(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "opened.log"
    opener = bin_dir / "xdg-open"
    opener.write_text(OPENER.format(log=log))
    opener.chmod(0o755)
    daemon = start_daemon(tmp_path, f"{bin_dir}:{os.environ.get('PATH', '')}")
    try:
        assert daemon.proc is not None
        folder = tmp_path / "saved"
        download_id = paused_download(daemon, folder)
        client = daemon.client()
        try:
            for _ in range(3):  # each click starts one opener; none may stay behind
                client.call("open", id=download_id, reveal=True)
        finally:
            client.close()

        deadline = time.monotonic() + 10
        while not (log.exists() and len(log.read_text().splitlines()) == 3):
            assert time.monotonic() < deadline, "the opener never ran"
            time.sleep(0.05)
        assert log.read_text().splitlines() == [str(folder)] * 3

        # The openers have exited (they wrote their line and stop at once); once the daemon
        # has waited for them, they are no longer its children at all, not even defunct.
        deadline = time.monotonic() + 10
        while (left := [c for c in children(daemon.proc.pid) if c[1] == "xdg-open"]):
            assert time.monotonic() < deadline, f"openers left under the daemon: {left}"
            time.sleep(0.1)
        assert not [c for c in children(daemon.proc.pid) if c[2] == "Z"]
    finally:
        daemon.stop()


def test_no_opener_installed_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    daemon = start_daemon(tmp_path, str(empty))
    try:
        assert daemon.proc is not None
        download_id = paused_download(daemon, tmp_path / "saved")
        client = daemon.client()
        try:
            with pytest.raises(FreightError) as info:
                client.call("open", id=download_id, reveal=True)
            assert "xdg-open" in str(info.value) and "xdg-utils" in str(info.value)
            # Nothing changed: the download is as it was, the daemon still answers.
            assert client.call("get", id=download_id)["state"] == "paused"
        finally:
            client.close()
        assert children(daemon.proc.pid) == []
    finally:
        daemon.stop()
