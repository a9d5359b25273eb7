"""Every string in every API param is valid Unicode: a lone surrogate (U+D800-U+DFFF, which
JSON's ``\\ud800`` escape can carry) is refused with -32602 naming the param, changes nothing
and leaves no traceback in the daemon's log. ``download_dir`` is checked before it is saved.

Against a real ``freight daemon`` over raw WebSocket frames, and the param checkers in process.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freight import config
from freight.daemon import params as P
from freight.daemon import protocol as api
from freight.errors import InputError
from hypothesis import given, settings
from hypothesis import strategies as st
from secdaemon import FREIGHT, DaemonProcess, database_dump, env_for

BAD = "a\ud800b"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("unicode-daemon") / "home").start()
    yield proc
    proc.stop()


def _logs(daemon: DaemonProcess) -> str:
    text = daemon.output()
    log = daemon.home / "logs" / "freight.log"
    if log.exists():
        text += log.read_text(errors="replace")
    return text


def _raw_call(daemon: DaemonProcess, method: str, params: dict[str, Any]) -> dict[str, Any]:
    frame = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    assert "\\ud800" in frame  # the escape itself goes over the wire, as a client can send it
    with daemon.connect() as ws:
        ws.send(frame)
        return dict(json.loads(ws.recv(timeout=10)))


URL = "https://example.com/f.bin"
CASES = [
    ("add", {"url": f"https://example.com/{BAD}"}, "url"),
    ("add", {"url": URL, "dir": f"/tmp/{BAD}"}, "dir"),
    ("add", {"url": URL, "name": BAD}, "name"),
    ("add", {"url": URL, "user_agent": BAD}, "user_agent"),
    ("add", {"url": URL, "mime": BAD}, "mime"),
    ("add", {"url": URL, "headers": {"X-A": BAD}}, "headers"),
    ("add", {"url": URL, "headers": {f"X-{BAD}": "v"}}, "headers"),
    ("add", {"url": URL, "cookies": f"s={BAD}"}, "cookies"),
    ("add", {"url": URL, "cookies": [{"name": "s", "value": BAD}]}, "cookies"),
    ("add", {"url": URL, "cookies": [{"name": BAD, "value": "v"}]}, "cookies"),
    ("refresh", {"id": 1, "url": URL, "headers": {"X-A": BAD}}, "headers"),
    ("refresh", {"id": 1, "url": URL, "cookies": [{"name": "s", "value": BAD}]}, "cookies"),
    ("refresh", {"id": 1, "url": f"{URL}?{BAD}"}, "url"),
    ("set_settings", {"settings": {"download_dir": f"/tmp/{BAD}"}}, "settings"),
    ("set_settings", {"settings": {"allowed_origins": [f"chrome-extension://{BAD}"]}},
     "settings"),
    ("set_settings", {"settings": {"max_active": 2, "download_dir": f"/tmp/{BAD}"}},
     "settings"),
    ("subscribe", {"events": [BAD]}, "events"),
]


@pytest.mark.parametrize(("method", "params", "param"), CASES,
                         ids=[f"{m}-{p}-{i}" for i, (m, _, p) in enumerate(CASES)])
def test_a_lone_surrogate_is_invalid_params_naming_the_param(
    daemon: DaemonProcess, method: str, params: dict[str, Any], param: str
) -> None:
    database = daemon.home / "freight.db"
    before = database_dump(database)
    reply = _raw_call(daemon, method, params)
    assert reply["error"]["code"] == -32602, reply
    assert reply["error"]["data"]["param"] == param, reply
    assert "Unicode" in reply["error"]["message"] or param in reply["error"]["message"]
    assert database_dump(database) == before
    assert "Traceback" not in _logs(daemon)
    assert daemon.alive()


def test_download_dir_is_checked_before_it_is_saved(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    database = daemon.home / "freight.db"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    before = database_dump(database)
    for bad in ["relative/dir", f"{tmp_path}/x\x00y", str(a_file), str(a_file / "below")]:
        with daemon.connect() as ws:
            reply = daemon.call(ws, "set_settings", {"settings": {"download_dir": bad}})
        assert reply["error"]["code"] == -32602, (bad, reply)
        assert "download_dir" in reply["error"]["message"], reply
        assert database_dump(database) == before
    # A folder that does not exist yet but can be made is accepted, and so is "" (the default).
    with daemon.connect() as ws:
        ok = daemon.call(ws, "set_settings",
                         {"settings": {"download_dir": str(tmp_path / "new" / "folder")}})
        assert ok["result"]["settings"]["download_dir"] == str(tmp_path / "new" / "folder")
        back = daemon.call(ws, "set_settings", {"settings": {"download_dir": ""}})
        assert back["result"]["settings"]["download_dir"] == ""
    assert "Traceback" not in _logs(daemon)


def test_freight_settings_download_dir_is_checked_before_it_is_saved(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """Through the CLI: a non-UTF-8 byte in argv reaches Python as a lone surrogate
    (surrogateescape), and a path below a regular file can never be made."""
    database = daemon.home / "freight.db"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    before = database_dump(database)
    for bad in [os.fsencode(tmp_path) + b"/\xff", os.fsencode(a_file / "below")]:
        done = subprocess.run([os.fsencode(FREIGHT), b"settings", b"download_dir", bad],
                              env=env_for(daemon.home), capture_output=True, timeout=30)
        assert done.returncode == 2, done
        assert b"download_dir" in done.stderr or b"settings" in done.stderr, done
        assert b"Traceback" not in done.stderr
        assert database_dump(database) == before
    assert "Traceback" not in _logs(daemon)


# -- in process: the checkers themselves ------------------------------------------------------

surrogate = st.integers(0xD800, 0xDFFF).map(chr)
with_surrogate = st.tuples(st.text(max_size=20), surrogate, st.text(max_size=20)).map(
    "".join)

CHECKERS: list[tuple[str, Any]] = [
    ("text", lambda v: P.text()("p", v)),
    ("http_url", lambda v: P.http_url("p", "https://example.com/" + v)),
    ("absolute_dir", lambda v: P.absolute_dir("p", "/" + v)),
    ("file_name", lambda v: P.file_name("p", v.replace("/", "_") or "x")),
    ("header value", lambda v: P.headers("p", {"X-A": v})),
    ("header name", lambda v: P.headers("p", {v: "x"})),
    ("cookie string", lambda v: P.cookies("p", v)),
    ("cookie value", lambda v: P.cookies("p", [{"name": "a", "value": v}])),
    ("cookie name", lambda v: P.cookies("p", [{"name": v, "value": "a"}])),
    ("checksum", lambda v: P.checksum("p", v)),
    ("download_dir", lambda v: P.settings_object("p", {"download_dir": "/" + v})),
    ("allowed_origins", lambda v: P.settings_object("p", {"allowed_origins": ["ok", v]})),
    ("setting name", lambda v: P.settings_object("p", {v: 1})),
    ("validate_setting", lambda v: config.validate_setting("download_dir", "/" + v)),
    ("check_params", lambda v: api.check_params("add", {"url": URL, "headers": {"X": v}})),
]


@pytest.mark.parametrize(("label", "check"), CHECKERS, ids=[c[0] for c in CHECKERS])
@settings(max_examples=60, deadline=None)
@given(value=with_surrogate)
def test_text_with_a_surrogate_always_raises_input_error(
    label: str, check: Any, value: str
) -> None:
    with pytest.raises(InputError) as caught:
        check(value)
    assert caught.value.message
    json.dumps(caught.value.message, ensure_ascii=False).encode("utf-8")  # sendable as UTF-8
