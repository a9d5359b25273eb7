"""`freight watch` on a real terminal (a pty of 24 rows by 100 columns) against a real daemon
with 60 downloads: 45 completed, 3 running, 12 queued. The running ones are on screen, the
frame never outgrows the terminal, and what does not fit is counted."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from rich.cells import cell_len

ROWS, COLS = 24, 100
ENTER, LEAVE, HOME = "\x1b[?1049h", "\x1b[?25h\x1b[?1049l", "\x1b[H"


def frames(screen: str) -> list[list[str]]:
    """Every frame watch drew: the text between two cursor-homes, as lines."""
    assert ENTER in screen, screen[:500]
    body = screen.split(ENTER, 1)[1].split(LEAVE, 1)[0]
    out = []
    for chunk in body.split(HOME)[1:]:
        text = chunk.replace("\x1b[K", "").replace("\x1b[J", "").replace("\r", "")
        out.append(text.split("\n"))
    return out


def test_watch_shows_the_running_downloads_first_and_fits_the_terminal(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    with FaultServer() as srv:
        client = daemon.client()
        try:
            small = [{"url": srv.add(f"/old-{i}.bin", data=make_data(2000, seed=i)),
                      "dir": str(tmp_path / "dl")} for i in range(45)]
            client.call_many("add", small)
            wait_for(lambda: len(client.call("list", states=["completed"])["downloads"]) == 45,
                     timeout=60)
            slow = [{"url": srv.add(f"/now-{i}.bin", data=make_data(4 << 20, seed=100 + i),
                                    rate=8192), "dir": str(tmp_path / "dl"), "connections": 1}
                    for i in range(15)]
            client.call_many("add", slow)
            running = wait_for(lambda: len(ids := [d["id"] for d in client.call(
                "list", states=["active"])["downloads"]]) == 3 and ids, timeout=30)
        finally:
            client.close()

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = {k: v for k, v in daemon.env.items() if k not in ("COLUMNS", "LINES")}
        proc = subprocess.Popen([sys.executable, "-m", "freight", "watch"],
                                env={**env, "TERM": "xterm-256color"},
                                stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        screen = b""
        try:
            deadline = time.monotonic() + 30
            # Read until a frame with the running downloads has been drawn, then stop watch.
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        screen += os.read(master, 65536)
                    except OSError:
                        break
                text = screen.decode(errors="replace")
                if ENTER in text and any(f"now-{i}.bin" in text for i in range(3)) and \
                        len(frames(text)) >= 3:
                    break
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
            while select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                screen += chunk
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)

        # The same filter flags in `ls` and `watch` (not on a terminal: every row, once).
        listed = json.loads(daemon.cli("ls", "--json", "--state", "completed", "--limit",
                                       "5").stdout)
        assert len(listed) == 5 and {d["state"] for d in listed} == {"completed"}
        piped = daemon.cli("watch", "--queued", "--active")
        assert piped.returncode == 0, piped.stderr
        states = [line.split()[1] for line in piped.stdout.splitlines()[1:]]
        assert states == ["active"] * 3 + ["queued"] * 12, piped.stdout

    assert proc.returncode == 0
    text = screen.decode()
    assert text.rstrip().endswith(LEAVE), text[-300:]  # the user's screen comes back
    drawn = frames(text)
    assert drawn
    for lines in drawn:  # no frame is ever taller or wider than the terminal
        assert len(lines) <= ROWS, lines
        assert all(cell_len(line) <= COLS for line in lines), lines
    # The frame being drawn when SIGINT came may be cut short (a pty takes a few KiB at a
    # time): the content is checked on the last frame drawn whole.
    whole = [lines for lines in drawn if len(lines) == ROWS and lines[-1]]
    assert whole, drawn
    last = whole[-1]
    assert last[0].split() == ["ID", "STATE", "DONE", "SIZE", "SPEED", "ETA", "NAME"]
    ids = [int(line.split()[0]) for line in last[1:-1]]
    assert ids[:3] == sorted(running), last  # the running ones first
    assert all("active" in line for line in last[1:4]), last
    assert all(" queued " in line for line in last[4:16]), last  # all 12 of them
    assert all(" completed " in line for line in last[16:-1]), last  # the newest first
    assert len(last) == ROWS
    assert last[-1] == "… and 38 more (completed 38)", last
