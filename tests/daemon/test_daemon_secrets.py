"""Secrets: the 0600 file fallback, sealing, and the real Secret Service over D-Bus."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from freight import config, secrets
from freight.errors import StoreError


@pytest.fixture
def file_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Paths:
    monkeypatch.setenv("FREIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    secrets.forget_cache()
    yield config.paths_from_env().ensure()
    secrets.forget_cache()


def test_file_fallback_is_private_and_stable(file_backend: config.Paths) -> None:
    paths = file_backend
    token = secrets.get_token(paths)
    assert len(token) >= 40
    assert secrets.backend_info(paths) == {
        "backend": "file", "fallback": True, "path": str(paths.secrets_dir)
    }
    token_file = paths.secrets_dir / secrets.TOKEN_USER
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.secrets_dir.stat().st_mode) == 0o700
    assert token_file.read_text() == token
    secrets.forget_cache()
    assert secrets.get_token(paths) == token  # read back, not made anew
    new = secrets.rotate_token(paths)
    assert new != token and token_file.read_text() == new
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    sealer = secrets.sealer(paths)
    key_file = paths.secrets_dir / secrets.KEY_USER
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secrets.forget_cache()
    again = secrets.sealer(paths)
    sealed = sealer.seal(b"Cookie: sid=1")
    assert b"sid=1" not in sealed and again.open(sealed) == b"Cookie: sid=1"
    assert sealer.seal(b"x") != sealer.seal(b"x")  # a fresh nonce every time


def test_sealed_data_is_authenticated(file_backend: config.Paths) -> None:
    sealer = secrets.sealer(file_backend)
    sealed = bytearray(sealer.seal(b"secret"))
    sealed[-1] ^= 1
    with pytest.raises(StoreError):
        sealer.open(bytes(sealed))
    with pytest.raises(StoreError):
        sealer.open(b"\x02" + bytes(40))
    with pytest.raises(StoreError):
        secrets.Sealer(os.urandom(32)).open(sealer.seal(b"secret"))


def test_two_processes_agree_on_one_token(file_backend: config.Paths) -> None:
    code = "from freight import config, secrets; print(secrets.get_token(config.paths_from_env()))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    tokens = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert len(tokens) == 1 and tokens == {secrets.get_token(file_backend)}


_SECRET_SERVICE_SCRIPT = textwrap.dedent("""
    set -eu
    printf test-pass | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    for i in $(seq 100); do
      if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
           org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null \
           | grep -q true; then break; fi
      sleep 0.1
    done
    "$PYTHON" - <<'PY'
    import json
    from freight import config, secrets
    paths = config.paths_from_env().ensure()
    token = secrets.get_token(paths)
    sealer = secrets.sealer(paths)
    assert sealer.open(sealer.seal(b"x")) == b"x"
    print(json.dumps({"info": secrets.backend_info(paths), "token": token}))
    PY
    secret-tool lookup service freight username api-token
    echo
""")


def test_real_secret_service(tmp_path: Path) -> None:
    tools = ["dbus-run-session", "gnome-keyring-daemon", "secret-tool", "dbus-send"]
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing {missing}: install dbus-x11 gnome-keyring libsecret-tools")
        pytest.skip(f"missing {missing} (apt: dbus-x11 gnome-keyring libsecret-tools)")
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS",
                                                            "PYTHON_KEYRING_BACKEND")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), FREIGHT_HOME=str(tmp_path / "fh"),
               PYTHON=sys.executable, XDG_DATA_HOME=str(home / ".local/share"))
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", _SECRET_SERVICE_SCRIPT],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    import json

    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[0])
    assert report["info"] == {"backend": "keyring.backends.SecretService.Keyring",
                              "fallback": False}
    # The token really is in the Secret Service (keyring stores the user as `username`),
    # and no file copy was written.
    assert lines[1].strip() == report["token"]
    assert not (tmp_path / "fh" / "secrets" / secrets.TOKEN_USER).exists()


def test_a_client_of_a_daemon_on_files_reads_the_file_without_choosing_a_keyring(
    daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon says where it keeps the token; a CLI command then skips loading and
    # probing every keyring backend (~0.1 s each time).
    info = __import__("json").loads(daemon.paths.daemon_file.read_text())
    assert info["secrets"] == "file"
    secrets.forget_cache()

    def no_choice(paths: config.Paths) -> None:
        raise AssertionError("a keyring backend was chosen")

    monkeypatch.setattr(secrets, "_choose", no_choice)
    assert secrets.get_token(daemon.paths, daemon_backend="file") == (
        daemon.paths.secrets_dir / "api-token").read_text().strip()
    from freight.client import Client

    with Client.connect(daemon.paths) as c:  # the handshake proves it is the daemon's token
        assert c.call("version")["protocol"] >= 1
    secrets.forget_cache()


def test_reading_the_token_does_not_load_the_sealing_library() -> None:
    # A CLI command reads the token and never seals: cryptography's import (~15-50 ms) is
    # paid by the daemon and `freight get`, which seal, not by every `freight add`.
    code = ("import sys, freight.client, freight.secrets; "
            "print('cryptography' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
