"""Every folder Freight creates is 0700 and every file 0600 (a program it writes to be run,
0700), whichever of its programs creates it first and whatever the umask.

Each test runs the programs for real, as a user would start them (`freight-host` as the browser
does, with a native-messaging frame on stdin; `freight daemon`, `freight start`, `freight get`,
`freight install`), under ``umask 022`` and ``umask 000``, with FREIGHT_HOME (or the XDG
folders) and HOME in ``tmp_path``, then walks every path Freight created and checks its mode.

Not Freight's, so left as they are: a FREIGHT_HOME or XDG base folder that existed before
(the user's), the download folder and the downloaded files, which follow the user's umask like
a browser's downloads (at most 0644 for a file).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, make_data
from freight_host.framing import FrameDecoder, encode

UMASKS = [0o022, 0o000]
EXTENSION_ID = "a" * 32


def umasked(umask: int, cmd: list[str]) -> list[str]:
    """cmd run by a shell that has set this umask, as a login session would."""
    return ["/bin/sh", "-c", f'umask {umask:03o}; exec "$@"', "sh", *cmd]


def freight_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "freight", *args]


def host_cmd() -> list[str]:
    return [sys.executable, "-m", "freight_host.host", "chrome-extension://test/"]


def base_env(tmp_path: Path, home: Path | None) -> dict[str, str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"),
               XDG_RUNTIME_DIR=str(tmp_path / "run"), NO_PROXY="*",
               FREIGHT_DOWNLOAD_DIR=str(tmp_path / "downloads"),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")  # the file fallback
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "http_proxy",
                 "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "FREIGHT_HOME",
                 "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env.pop(name, None)
    if home is not None:
        env["FREIGHT_HOME"] = str(home)
    else:  # the platform's folders (platformdirs), all under the tmp HOME
        env["XDG_CONFIG_HOME"] = str(tmp_path / "home" / ".config")
        env["XDG_DATA_HOME"] = str(tmp_path / "home" / ".local" / "share")
        env["XDG_STATE_HOME"] = str(tmp_path / "home" / ".local" / "state")
        env["XDG_CACHE_HOME"] = str(tmp_path / "home" / ".cache")
    return env


def run(umask: int, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(umasked(umask, freight_cmd(*args)), env=env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def loose(root: Path, *, skip: tuple[Path, ...] = (), include_root: bool = True) -> list[str]:
    """Every path under root (not under skip) whose mode is not private: folders 0700, files
    0600 (0700 for a program). Empty when all is well; else 'MODE path' lines."""
    bad: list[str] = []

    def check(path: Path) -> None:
        st = os.lstat(path)
        got = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            want = {0o700}
        elif stat.S_ISREG(st.st_mode):
            want = {0o600, 0o700}
        else:
            bad.append(f"{got:04o} {path} (neither a folder nor a file)")
            return
        if got not in want:
            bad.append(f"{got:04o} {path}")

    if include_root:
        check(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in dirnames + filenames:
            check(Path(dirpath, name))
    return sorted(bad)


def assert_private(bad: list[str]) -> None:
    assert not bad, "not private:\n" + "\n".join(bad)


def seed_database(umask: int, root: Path) -> None:
    """A database that asks for any free port (6817 may be taken on a shared machine), made by
    Freight's own store under the umask, in a FREIGHT_HOME that the user made."""
    code = ("import sys; from freight.store import Store; s = Store(sys.argv[1]); "
            "s.set_settings({'port': 0}); s.close()")
    subprocess.run(umasked(umask, [sys.executable, "-c", code, str(root / "freight.db")]),
                   check=True, timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"daemon {pid} did not stop"


def wait_daemon_file(state: Path, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info: dict[str, Any] = json.loads((state / "daemon.json").read_text())
            return info
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"no daemon.json in {state}")


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """Pids of daemons a test started; each is stopped (SIGTERM) at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        _wait_gone(pid)


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    _wait_gone(pid)


def host_hello(umask: int, env: dict[str, str]) -> dict[str, Any]:
    """Start freight-host as the browser does, say host.hello, close stdin: its answer."""
    proc = subprocess.Popen(umasked(umask, host_cmd()), env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(encode({"jsonrpc": "2.0", "id": 1, "method": "host.hello"}),
                                timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")
    frames = FrameDecoder().feed(out)
    assert frames and isinstance(frames[0], dict), (out, err)
    answer: dict[str, Any] = frames[0]
    assert "result" in answer, answer
    return answer


@pytest.mark.parametrize("umask", UMASKS, ids=["022", "000"])
def test_freight_host_first_makes_everything_private(
        tmp_path: Path, umask: int, daemons: list[int]) -> None:
    """The browser starts the host before any daemon ran: the host makes the state and log
    folders and its log, then runs `freight start`, whose daemon makes the rest."""
    root = tmp_path / "fh"
    root.mkdir()
    root.chmod(0o755)  # the user's own FREIGHT_HOME: not Freight's to change
    seed_database(umask, root)
    env = base_env(tmp_path, root)
    host_hello(umask, env)
    info = wait_daemon_file(root / "state")
    daemons.append(info["pid"])
    assert (root / "logs" / "freight-host.log").is_file()
    assert_private(loose(root, include_root=False))
    stop(info["pid"])
    assert_private(loose(root, include_root=False))
    assert mode(root) == 0o755
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("umask", UMASKS, ids=["022", "000"])
def test_freight_daemon_first_makes_everything_private(
        tmp_path: Path, umask: int, daemons: list[int]) -> None:
    root = tmp_path / "fh"
    env = base_env(tmp_path, root)
    proc = subprocess.Popen(umasked(umask, freight_cmd("daemon", "--no-tray", "--port", "0")),
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    daemons.append(proc.pid)
    info = wait_daemon_file(root / "state")
    assert info["pid"] == proc.pid
    assert_private(loose(root))
    stop(proc.pid)
    assert_private(loose(root))


@pytest.mark.parametrize("umask", UMASKS, ids=["022", "000"])
def test_freight_start_and_stop_make_everything_private(
        tmp_path: Path, umask: int, daemons: list[int]) -> None:
    root = tmp_path / "fh"
    root.mkdir()
    seed_database(umask, root)
    env = base_env(tmp_path, root)
    run(umask, env, "start")
    info = wait_daemon_file(root / "state")
    daemons.append(info["pid"])
    assert (root / "logs" / "daemon-stderr.log").is_file()
    assert_private(loose(root, include_root=False))  # the root is the user's
    run(umask, env, "stop")
    _wait_gone(info["pid"])
    assert_private(loose(root, include_root=False))


@pytest.mark.parametrize("umask", UMASKS, ids=["022", "000"])
def test_freight_get_makes_everything_private_but_the_download_follows_the_umask(
        tmp_path: Path, umask: int, fault_server: FaultServer) -> None:
    root = tmp_path / "fh"
    env = base_env(tmp_path, root)
    url = fault_server.add("/file.bin", make_data(200_000))
    folder = tmp_path / "chosen"
    run(umask, env, "get", "-q", "-d", str(folder), url)
    assert_private(loose(root))
    # The user's folder and file, made as the user's umask says (a browser does the same).
    assert mode(folder) == 0o777 & ~umask
    assert mode(folder / "file.bin") == 0o644 & ~umask
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("portable", [True, False], ids=["FREIGHT_HOME", "XDG"])
@pytest.mark.parametrize("umask", UMASKS, ids=["022", "000"])
def test_freight_install_makes_everything_private(
        tmp_path: Path, umask: int, portable: bool) -> None:
    """install writes the launcher in the data folder, its record in the config folder, host
    manifests in the browsers' folders and the autostart entry, making every folder it
    needs: all of it, created by Freight under an empty HOME, is private."""
    root = tmp_path / "fh"
    env = base_env(tmp_path, root if portable else None)
    (tmp_path / "bin").mkdir()
    env["PATH"] = str(tmp_path / "bin")  # no browser found on PATH: only those named
    run(umask, env, "install", "--browser", "chromium", "--browser", "firefox",
        "--extension-id", EXTENSION_ID)
    home = tmp_path / "home"
    written = [home / ".config/chromium/NativeMessagingHosts/dev.freight.host.json",
               home / ".mozilla/native-messaging-hosts/dev.freight.host.json",
               home / ".config/autostart/freight.desktop"]
    assert all(p.is_file() for p in written)
    made = [home] + ([root] if portable else [])
    assert_private([line for top in made for line in loose(top)])
    launcher = json.loads(written[0].read_text())["path"]
    assert mode(Path(launcher)) == 0o700
    run(umask, env, "uninstall")


def test_freight_install_tightens_the_folders_an_older_install_left_loose(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    config, data = home / ".config", home / ".local" / "share"
    for folder in (home, config, config / "freight", data.parent, data, data / "freight"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)
    env = base_env(tmp_path, None)
    (tmp_path / "bin").mkdir()
    env["PATH"] = str(tmp_path / "bin")
    run(0o022, env, "install", "--browser", "firefox", "--no-autostart")
    assert mode(config / "freight") == mode(data / "freight") == 0o700
    assert [mode(f) for f in (home, config, data.parent, data)] == [0o755] * 4  # the user's


def _leftovers(tmp_path: Path, portable: bool) -> tuple[dict[str, str], list[Path], Path]:
    """What an older Freight left, 0755 folders and 0644 files. Returns the environment, the
    folders the user made (kept as they are) and the top of what is Freight's."""
    if portable:
        root = tmp_path / "fh"
        users, state, logs, data = [root], root / "state", root / "logs", root
        top = root
    else:
        home = tmp_path / "home"
        users = [home, home / ".config", home / ".local", home / ".local" / "share",
                 home / ".local" / "state"]
        data = home / ".local" / "share" / "freight"
        state = home / ".local" / "state" / "freight"
        logs = state / "log"
        (home / ".config" / "freight").mkdir(parents=True)
        (home / ".config" / "freight").chmod(0o755)
        top = home
    for folder in users + [state, logs, data]:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    for name in ("freight.log", "freight.log.1", "freight-host.log", "daemon-stderr.log"):
        (logs / name).write_text("GET https://cdn.example/f?X-Amz-Signature=secret\n")
        (logs / name).chmod(0o644)
    return base_env(tmp_path, tmp_path / "fh" if portable else None), users, top


@pytest.mark.parametrize("portable", [True, False], ids=["FREIGHT_HOME", "XDG"])
def test_an_older_freights_loose_folders_and_logs_are_tightened(
        tmp_path: Path, portable: bool, daemons: list[int]) -> None:
    env, users, top = _leftovers(tmp_path, portable)
    proc = subprocess.Popen(umasked(0o022, freight_cmd("daemon", "--no-tray", "--port", "0")),
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    daemons.append(proc.pid)
    state = (tmp_path / "fh" / "state") if portable else \
        (tmp_path / "home" / ".local" / "state" / "freight")
    wait_daemon_file(state)
    host_hello(0o022, env)
    bad = [line for line in loose(top, include_root=False)
           if Path(line.split(" ", 1)[1]) not in users]
    assert_private(bad)
    assert [mode(u) for u in users] == [0o755] * len(users)  # the user's: untouched


@pytest.mark.parametrize("umask", UMASKS, ids=["022", "000"])
def test_a_rotated_log_is_private_too(tmp_path: Path, umask: int) -> None:
    """The log file made when the log rotates (the daemon's, the CLI's and the host's)."""
    code = ("import logging, sys; from pathlib import Path; "
            "from freight.logs import PrivateRotatingFileHandler as H; "
            "h = H(Path(sys.argv[1]), maxBytes=200, backupCount=2); "
            "[h.emit(logging.makeLogRecord({'msg': 'x' * 150})) for _ in range(6)]; h.close()")
    logs = tmp_path / "fh" / "logs"
    subprocess.run(umasked(umask, [sys.executable, "-c", code, str(logs / "freight.log")]),
                   check=True, timeout=60)
    assert sorted(p.name for p in logs.iterdir()) == [
        "freight.log", "freight.log.1", "freight.log.2"]
    assert_private(loose(tmp_path / "fh"))


def test_a_file_that_vanishes_while_it_is_tightened_is_no_error(tmp_path: Path) -> None:
    # SQLite removes freight.db-shm and -wal when another process closes the database, which
    # can happen between ensure() seeing the file and changing its mode.
    from freight import config

    config.tighten(tmp_path / "freight.db-shm")  # no such file: nothing to do, no error
    kept = tmp_path / "freight.log"
    kept.write_text("x")
    kept.chmod(0o644)
    config.tighten(kept)
    assert kept.stat().st_mode & 0o777 == 0o600
