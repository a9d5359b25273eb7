"""Another local user on the port of a dead daemon never gets the token, nor a download.

A daemon killed with SIGKILL leaves daemon.json behind. Another user who then listens on its
port (tests/security/impostor.py, run as uid/gid 65534 when the tests run as root) would,
with a bearer token, receive the token from the first client that trusted the file, answer
``add`` with a fake id, and use the token on the restarted daemon to write files anywhere.
The defences: a stale daemon.json is never trusted (its pid must exist and someone must hold
the instance lock, freight.daemonfile.read_running), and when something does answer where
daemon.json says, it must prove the token before the client sends anything but a nonce
(freight.handshake).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freight import config, daemonfile, handshake
from freight.daemon.instance import InstanceLock
from freight.store import Store
from secdaemon import FREIGHT, DaemonProcess, env_for

IMPOSTOR = Path(__file__).with_name("impostor.py")
NOBODY = 65534
FAKE_ID = 424242
AS_ROOT = os.geteuid() == 0


class Impostor:
    """impostor.py as another uid when we are root (else as ours, which tests the same code
    paths: the client cannot tell uids apart on a TCP port)."""

    def __init__(self, port: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="freight-impostor-"))
        self.log = self.folder / "received.log"
        extra: dict[str, Any] = {}
        python = sys.executable
        if AS_ROOT:
            os.chown(self.folder, NOBODY, NOBODY)
            extra = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
            # Our interpreter may live where another user cannot read (root's home).
            python = shutil.which("python3", path="/usr/bin:/bin") or ""
            assert python, "no /usr/bin/python3 for the impostor's uid"
        self.proc = subprocess.Popen(
            [python, "-I", str(IMPOSTOR), str(port), str(self.log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/", **extra)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            assert self.proc.stderr is not None
            raise AssertionError(f"the impostor did not start: {self.proc.stderr.read()!r}")
        self.port = int(line)
        if AS_ROOT:  # really another user: the kernel says whose process it is
            assert os.stat(f"/proc/{self.proc.pid}").st_uid == NOBODY

    def received(self) -> bytes:
        try:
            return self.log.read_bytes()
        except FileNotFoundError:
            return b""

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def assert_nothing_usable(received: bytes, token: str, port: int) -> None:
    """Neither the token nor anything that verifies as a client proof reached the impostor."""
    assert token.encode() not in received
    text = received.decode("latin-1")
    for line in text.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "authorization":
            try:
                creds = handshake.parse_authorization(value)
            except handshake.HandshakeError:
                continue
            assert not handshake.verify_client_proof(token, creds.nonce, creds.challenge,
                                                     port, creds.proof), line
    assert '"method": "add"' not in text and '"method":"add"' not in text


def host_env(home: Path) -> dict[str, str]:
    env = env_for(home)
    env["FREIGHT_DOWNLOAD_DIR"] = str(home / "downloads")
    return env


def run_host_add(env: dict[str, str], url: str) -> dict[str, Any]:
    """The real freight-host, given one `add` by the "extension" (native-messaging framing)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "native_host"))
    from host_support import HostProcess

    host = HostProcess([sys.executable, "-m", "freight_host.host", "chrome-extension://test/"],
                       env)
    host.seen = []
    try:
        answer = host.call("add", {"url": url, "paused": True}, timeout=60)
        host.close_stdin()
        host.wait(20)
        return answer
    finally:
        host.kill()


def stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.fixture
def dead_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A real daemon killed with SIGKILL: its daemon.json (and its port) left behind."""
    home = tmp_path / "home"
    paths = config.paths_from_env({"FREIGHT_HOME": str(home)}).ensure()
    store = Store(paths.database)
    store.set_settings({"port": 0})  # the restarted daemon must not need the impostor's port
    store.close()
    daemon = DaemonProcess(home).start()
    assert daemon.proc is not None
    daemon.proc.kill()
    daemon.proc.wait(10)
    daemon.log.close()
    assert json.loads(paths.daemon_file.read_text())["pid"] == daemon.proc.pid
    yield daemon
    try:
        info = json.loads(paths.daemon_file.read_text())
    except (OSError, ValueError):
        return
    if info.get("pid") not in (daemon.proc.pid, os.getpid()):
        stop_pid(int(info["pid"]))  # the daemon the host started


def test_another_user_on_a_dead_daemons_port_gets_nothing(dead_daemon: DaemonProcess) -> None:
    token, old_pid, port = dead_daemon.token(), dead_daemon.info["pid"], dead_daemon.port
    impostor = Impostor(port)  # binds the dead daemon's port while it is free
    try:
        assert impostor.port == port
        env = host_env(dead_daemon.home)
        # The CLI says the daemon is not running: the stale file is not trusted.
        for args in (["ls"], ["add", "http://127.0.0.1:9/x", "--paused"]):
            cli = subprocess.run([FREIGHT, *args], env=env, capture_output=True, text=True,
                                 timeout=60)
            assert cli.returncode != 0 and "not running" in cli.stderr + cli.stdout, cli
        # The host starts the real daemon (or gives the download back to the browser).
        answer = run_host_add(env, "http://127.0.0.1:9/kept.bin")
        state = dead_daemon.home / "state" / "daemon.json"
        if "error" in answer:
            assert answer["error"]["code"] == -32010, answer
        else:
            new = json.loads(state.read_text())
            assert new["pid"] != old_pid and new["port"] != port
            assert answer["result"]["id"] != FAKE_ID
            listed = subprocess.run([FREIGHT, "ls", "--json"], env=env, capture_output=True,
                                    text=True, timeout=60)
            assert listed.returncode == 0, listed
            rows = json.loads(listed.stdout)
            assert [(r["id"], r["url"]) for r in rows] == [
                (answer["result"]["id"], "http://127.0.0.1:9/kept.bin")]
        received = impostor.received()
    finally:
        impostor.stop()
    assert_nothing_usable(received, token, port)
    assert received == b"", received[:400]  # no client even connected to it


@pytest.fixture
def live_looking_file(tmp_path: Path) -> Iterator[tuple[Path, Impostor, str]]:
    """daemon.json naming an impostor's port while its pid lives and the instance lock is
    held (the test holds both): what a race with a restart or a reused pid could show."""
    home = tmp_path / "home"
    paths = config.paths_from_env({"FREIGHT_HOME": str(home)}).ensure()
    token = "the-users-token-" + "x" * 27
    paths.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (paths.secrets_dir / "api-token").write_text(token)
    (paths.secrets_dir / "api-token").chmod(0o600)
    lock = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    impostor = Impostor(0)
    paths.daemon_file.write_text(json.dumps({
        "pid": os.getpid(), "port": impostor.port, "url": f"ws://127.0.0.1:{impostor.port}/",
        "protocol": 1, "started_at": time.time()}))
    try:
        yield home, impostor, token
    finally:
        impostor.stop()
        os.close(lock)


def test_an_impostor_with_a_made_up_proof_is_refused(
        live_looking_file: tuple[Path, Impostor, str]) -> None:
    home, impostor, token = live_looking_file
    env = host_env(home)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    cli = subprocess.run([FREIGHT, "add", "http://127.0.0.1:9/x", "--paused"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0, cli
    assert "not this user's Freight daemon" in cli.stderr and "nothing was sent" in cli.stderr
    assert token not in cli.stderr + cli.stdout
    answer = run_host_add(env, "http://127.0.0.1:9/y")
    assert answer["error"]["code"] == -32010, answer
    assert "not this user's Freight daemon" in answer["error"]["data"]["reason"]
    received = impostor.received()
    # Both asked for the challenge (so the proof was what stopped them), and sent no more.
    assert received.count(b"GET /challenge ") == 2, received
    assert b"Upgrade" not in received and b"uthorization" not in received
    assert_nothing_usable(received, token, impostor.port)


def test_doctor_names_the_program_on_the_port_not_a_restart(
        live_looking_file: tuple[Path, Impostor, str]) -> None:
    """Restarting Freight cannot help while another program answers on its port: doctor says
    so, and never sends the token there either."""
    home, impostor, token = live_looking_file
    env = host_env(home)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    doctor = subprocess.run([FREIGHT, "doctor", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    daemon = checks["daemon"]
    assert daemon["status"] == "fail", daemon
    assert "not this user's Freight daemon" in daemon["detail"], daemon
    # /proc shows who it is: root sees every process, and without root it runs as our uid.
    assert f"port {impostor.port} is held by python" in daemon["detail"], daemon
    assert f"sport = :{impostor.port}" in daemon["fix"], daemon  # who holds it, not a restart
    assert_nothing_usable(impostor.received(), token, impostor.port)


# -- a stale daemon.json ----------------------------------------------------------------------

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_SH if sys.argv[2] == "shared" else fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


def hold_lock(path: Path, how: str, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the lock file ``how`` (shared: a client's probe; exclusive:
    a daemon) for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), how, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_stale_daemon_file_is_never_trusted(dead_daemon: DaemonProcess) -> None:
    paths = config.paths_from_env({"FREIGHT_HOME": str(dead_daemon.home)})
    # The daemon died with SIGKILL: its pid is gone and the kernel freed its lock.
    with pytest.raises(daemonfile.StaleDaemonFile):
        daemonfile.read_running(paths)
    assert daemonfile.read_live(paths) is None
    # A pid that exists (reused, here ours) is not enough without the lock ...
    info = json.loads(paths.daemon_file.read_text())
    paths.daemon_file.write_text(json.dumps({**info, "pid": os.getpid()}))
    with pytest.raises(daemonfile.StaleDaemonFile, match="instance lock"):
        daemonfile.read_running(paths)
    # ... nor is a missing lock file.
    paths.lock_file.unlink()
    with pytest.raises(daemonfile.StaleDaemonFile):
        daemonfile.read_running(paths)
    # With both, it is a running daemon's file; the probe left the lock as it found it.
    holder = hold_lock(paths.lock_file, "exclusive", 30)
    try:
        assert daemonfile.read_running(paths)["pid"] == os.getpid()
        assert daemonfile.read_running(paths)["pid"] == os.getpid()
    finally:
        holder.kill()
        holder.wait(5)
    # The lock is free again: the file is stale again.
    with pytest.raises(daemonfile.StaleDaemonFile):
        daemonfile.read_running(paths)


def test_a_clients_lock_probe_never_makes_a_daemon_start_fail(tmp_path: Path) -> None:
    lock_file = tmp_path / "daemon.lock"
    probe = hold_lock(lock_file, "shared", 0.2)  # a client's probe, caught mid-way (and long)
    try:
        lock = InstanceLock(lock_file)
        assert lock.acquire()  # waited for the probe to let go
    finally:
        probe.wait(5)
    other = subprocess.run([sys.executable, "-c",
                            "import sys; from freight import config, daemonfile; "
                            f"sys.exit(0 if daemonfile.lock_is_held(__import__('pathlib')"
                            f".Path({str(lock_file)!r})) else 1)"], timeout=30)
    assert other.returncode == 0  # another process sees the daemon's lock held
    assert not InstanceLock(lock_file).acquire(patience=0.1)  # a second daemon still fails
    lock.release()
    assert not daemonfile.lock_is_held(lock_file)
