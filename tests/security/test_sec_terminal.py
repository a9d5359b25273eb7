"""Text from a server never reaches a terminal raw (freight.cli.terminal).

A reason phrase, a file name, a URL or an error text holding ESC, BEL, C1 controls or bidi
overrides once went to the terminal as it was in `freight ls` (a window title set, the screen
cleared, the line reordered), and Rich markup in it (``[bold red]``, ``[link=...]``) was
interpreted. Every CLI line made of such data shows those characters as visible escapes and
the markup as text; ``--json`` stays exact.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from freight import config
from rawserver import RawServer, read_head
from secdaemon import FREIGHT, DaemonProcess, env_for

#: Sent by the server as its reason phrase (bytes: Latin-1 as RFC 9112 §4 reads them; the
#: UTF-8 of U+202E and of U+009B (CSI) arrive as C1 characters).
REASON = (b"\x1b]0;pwned\x07 \x1b[2J [bold red]x[/] [link=file:///etc]y[/link] "
          + "\u202e".encode() + b" \xc2\x9b")
#: How the CLI must show it, literally.
SHOWN = ("\\x1b]0;pwned\\x07 \\x1b[2J [bold red]x[/] [link=file:///etc]y[/link] "
         "\u00e2\\x80\u00ae \u00c2\\x9b")
#: A file name keeps no "/" or ":" (files.sanitize), but markup needs neither.
NAMED = "[bold red]x[reverse] [link=evil]y.bin"
#: In the URL itself (a URL may hold any character but spaces and C0 controls).
BIDI_PATH = "/gone\u202egpj.exe"
BODY = b"0123456789" * 100


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        line, _ = await read_head(reader)
        if not line:
            return
        if line.split(" ")[1].startswith("/named"):
            head = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                    b"Content-Disposition: attachment; filename=\"%s\"\r\n\r\n"
                    % (len(BODY), NAMED.encode()))
            writer.write(head + BODY)
        else:
            writer.write(b"HTTP/1.1 404 " + REASON + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    with RawServer(serve) as srv:
        yield srv


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, server: RawServer) -> Iterator[
        DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("sec-terminal") / "home").start()
    folder = proc.home / "downloads"
    folder.mkdir()
    with proc.connect() as ws:
        for n, path in enumerate(("/evil", BIDI_PATH, "/named")):
            download_id = proc.call(ws, "add", {"url": server.url(path), "dir": str(folder)},
                                    id_=10 + n)["result"]["id"]
            for _ in range(200):
                got = proc.call(ws, "get", {"id": download_id}, id_=20 + n)["result"]
                if got["state"] in ("completed", "failed"):
                    break
                time.sleep(0.05)
            assert got["state"] == ("completed" if path == "/named" else "failed"), got
    yield proc
    proc.stop()


SGR = re.compile(rb"\x1b\[[0-9;]*m")  # colour and style only: what Rich itself sends
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def assert_safe(out: bytes, *, tty: bool = False) -> str:
    """No control character reaches the terminal but newlines, and Rich's own styles (and,
    on a terminal, its cursor moves); returns the text."""
    out = SGR.sub(b"", out)
    if tty:  # a progress line redraws itself: cursor up / erase line / show-hide cursor
        out = re.sub(rb"\x1b\[(?:\d*[AK]|\?25[lh])|\r", b"", out)
    text = out.decode("utf-8")
    found = UNSAFE.findall(text)
    assert not found, (found, text)
    return text


def run(daemon: DaemonProcess, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([FREIGHT, *args], env={**env_for(daemon.home), "COLUMNS": "250",
                                                 **env},
                          capture_output=True, timeout=60)
    return proc


@pytest.mark.parametrize("colour", [{}, {"FORCE_COLOR": "1", "TERM": "xterm-256color"}],
                         ids=["plain", "force-color"])
def test_freight_ls_shows_server_text_escaped_and_markup_as_text(
    daemon: DaemonProcess, server: RawServer, colour: dict[str, str]
) -> None:
    proc = run(daemon, "ls", **colour)
    assert proc.returncode == 0, proc.stderr
    text = assert_safe(proc.stdout + proc.stderr)
    assert SHOWN in text, text
    assert NAMED in text, text  # markup in a file name, as it is
    assert "/gone\\u202egpj.exe" in text, text


def test_freight_ls_json_stays_exact(daemon: DaemonProcess) -> None:
    proc = run(daemon, "ls", "--json")
    assert proc.returncode == 0, proc.stderr
    assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout  # JSON escapes them
    rows = {Path(r["url"]).name: r for r in json.loads(proc.stdout)}
    reason = REASON.decode("latin-1")
    assert rows["evil"]["error"] == f"HTTP 404 {reason}"
    assert rows["named"]["name"] == NAMED
    assert Path(BIDI_PATH).name in rows


def test_freight_watch_shows_server_text_escaped(daemon: DaemonProcess) -> None:
    proc = subprocess.Popen([FREIGHT, "watch"], env={**env_for(daemon.home), "COLUMNS": "250"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2)  # not a timing assertion: only lets watch draw before it is stopped
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    text = assert_safe(out + err)
    assert SHOWN in text and NAMED in text, text


def test_freight_get_says_the_server_text_escaped(
    server: RawServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {**env_for(home), "COLUMNS": "250"}
    proc = subprocess.run([FREIGHT, "get", "-d", str(tmp_path), server.url("/evil")], env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 1
    text = assert_safe(proc.stdout + proc.stderr)
    assert f"Failed: HTTP 404 {SHOWN}" in text, text
    # --json: exact, as the API gives it.
    proc = subprocess.run([FREIGHT, "get", "--json", "-d", str(tmp_path / "j"),
                           server.url("/evil")], env=env, capture_output=True, timeout=60)
    assert json.loads(proc.stdout)["error"] == f"HTTP 404 {REASON.decode('latin-1')}"


def test_freight_get_on_a_terminal_shows_names_and_errors_escaped(
    server: RawServer, tmp_path: Path
) -> None:
    """On a terminal (a pty), through Rich: the progress line and the final line."""
    home = tmp_path / "home"
    env = {**env_for(home), "COLUMNS": "250", "TERM": "xterm-256color"}
    out = b""
    for path in ("/named", "/evil"):
        master, slave = pty.openpty()
        proc = subprocess.Popen([FREIGHT, "get", "-d", str(tmp_path), server.url(path)],
                                env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
        os.close(slave)
        out += read_all(master)
        proc.wait(60)
        os.close(master)
    text = assert_safe(out, tty=True)
    assert "HTTP 404 " + SHOWN in text.replace("\n", ""), text
    assert f"Saved {tmp_path / NAMED}" in text.replace("\n", ""), text


def read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_freight_status_error_and_cli_errors_are_escaped(tmp_path: Path) -> None:
    """An error the CLI prints (here: it cannot reach the URL daemon.json names, which holds
    control characters and a password) is escaped and redacted."""
    home = tmp_path / "home"
    paths = config.paths_from_env({"FREIGHT_HOME": str(home)}).ensure()
    paths.daemon_file.write_text(json.dumps(
        {"pid": os.getpid(), "url": "ws://u:PW-SECRET@127.0.0.1:9/\x1b]0;pwned\x07[bold]"}))
    # A daemon.json is trusted only while its pid lives and the instance lock is held: this
    # process plays the daemon for both, so that the CLI goes on to the URL and fails there.
    lock = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        run_status_and_ls(home)
    finally:
        os.close(lock)


def run_status_and_ls(home: Path) -> None:
    for command in ("status", "ls"):
        proc = subprocess.run([FREIGHT, command], env=env_for(home), capture_output=True,
                              timeout=60)
        assert proc.returncode == 1
        text = assert_safe(proc.stdout + proc.stderr)
        assert "ws://<redacted>@127.0.0.1:9/\\x1b]0;pwned\\x07[bold]" in text, text
        assert "PW-SECRET" not in text
