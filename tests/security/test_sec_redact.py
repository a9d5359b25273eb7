"""Secrets never in clear in an error text, a log, the API or the popup (freight.redact).

A cookie value beyond Latin-1 once made the lean reader fail with an error whose text was the
whole request head, cookies and Authorization included; that text was stored in the
download's ``error``, logged, returned by ``list``/``get`` and shown in the popup. Now the
reader names the header only, and every error is redacted where it is stored, every log line
where it is written (daemon, CLI and freight-host logs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, make_data
from freight.models import DownloadState
from freight.redact import MARKER, redact_text
from freight.secrets import Sealer
from freight.states import StateKeeper
from freight.store import Store
from freight_host.framing import encode
from hypothesis import given, settings
from hypothesis import strategies as st
from secdaemon import FREIGHT, DaemonProcess, env_for

COOKIE_VALUE = "sésame☃-COOKIE-71c2"
AUTH = "Bearer AUTH-SECRET-5d0e"
#: Any of these in clear anywhere is a leak.
LEAKS = ("sésame", "COOKIE-71c2", "AUTH-SECRET-5d0e")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("sec-redact") / "home").start()
    yield proc
    proc.stop()


def wait_for_end(daemon: DaemonProcess, ws: Any, download_id: int) -> dict[str, Any]:
    for _ in range(200):
        got: dict[str, Any] = daemon.call(ws, "get", {"id": download_id}, id_=2)["result"]
        if got["state"] in ("completed", "failed", "paused", "needs_refresh"):
            return got
        time.sleep(0.05)
    raise AssertionError(f"download {download_id} did not end: {got}")


def files_holding(root: Path, *secrets: str) -> list[tuple[str, str]]:
    """(file, secret) for every secret found in clear in a file under root (the keyring
    fallback's own files excepted: they hold the token and the sealing key)."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.parent.name != "secrets":
            data = path.read_bytes()
            found += [(str(path), s) for s in secrets if s.encode() in data]
    return found


def test_a_cookie_beyond_latin1_fails_naming_the_header_and_no_secret_leaks(
    daemon: DaemonProcess, fault_server: FaultServer, tmp_path: Path
) -> None:
    url = fault_server.add("/private.bin", make_data(20_000), etag="v1")
    with daemon.connect() as ws:
        added = daemon.call(ws, "add", {
            "url": url, "dir": str(tmp_path), "cookies": f"sid={COOKIE_VALUE}",
            "headers": {"Authorization": AUTH}})
        download_id = added["result"]["id"]
        got = wait_for_end(daemon, ws, download_id)
        listed = daemon.call(ws, "list", id_=3)["result"]
    # It says what went wrong, naming the header...
    assert got["state"] == "failed", got
    assert "Cookie header" in got["error"] and "Latin-1" in got["error"], got["error"]
    # ...and no value of a secret header is stored, returned, logged or shown.
    cli = subprocess.run([FREIGHT, "ls", "--json"], env=env_for(daemon.home),
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    text = subprocess.run([FREIGHT, "ls"], env=dict(env_for(daemon.home), COLUMNS="200"),
                          capture_output=True, text=True, timeout=30)
    assert "Cookie header" in text.stdout, text.stdout
    shown = json.dumps([got, listed], ensure_ascii=False) + cli.stdout + text.stdout + text.stderr
    for secret in LEAKS:
        assert secret not in shown
    assert files_holding(daemon.home, *LEAKS) == []
    assert any(p.name == "freight.log" for p in daemon.home.rglob("*"))


def test_an_error_quoting_a_request_head_is_stored_redacted(tmp_path: Path) -> None:
    """Whatever raised it: the text an encode error gives for a request head (its repr holds
    the whole head) and a URL with its userinfo are redacted where an error is stored."""
    store = Store(tmp_path / "freight.db", sealer=Sealer(bytes(range(32))))
    keeper = StateKeeper(store)
    download = store.add("http://127.0.0.1:9/f.bin", str(tmp_path), state=DownloadState.ACTIVE)
    head = (f"GET /f.bin HTTP/1.1\r\nHost: x\r\nCookie: sid={COOKIE_VALUE}\r\n"
            f"Authorization: {AUTH}\r\n\r\n")
    try:
        head.encode("latin-1")
    except UnicodeEncodeError as exc:
        error = (f"internal error: {exc!r}; while fetching "
                 "http://alice:AUTH-SECRET-5d0e@127.0.0.1:9/f.bin")
    moved = keeper.move(download.id, DownloadState.FAILED, error=error, error_kind="internal")
    for row in (moved, store.get(download.id), store.list()[0][0]):
        assert row.error is not None
        for secret in LEAKS:
            assert secret not in row.error, row.error
        # Still says what happened and where.
        assert "internal error: UnicodeEncodeError" in row.error
        assert f"http://{MARKER}@127.0.0.1:9/f.bin" in row.error
    store.close()
    assert files_holding(tmp_path, *LEAKS) == []


def test_log_lines_and_tracebacks_are_redacted(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "freight.log"
    code = f"""
import logging, sys
from pathlib import Path
from freight import logs
logs.setup(Path({str(log_file)!r}), stderr_level=logging.INFO)
log = logging.getLogger("freight.test")
log.info("request head: %s", "GET / HTTP/1.1\\r\\nCookie: sid={COOKIE_VALUE}\\r\\n")
log.warning("to %s with %r", "https://alice:AUTH-SECRET-5d0e@example.test/f",
            {{"Authorization": "{AUTH}"}})
try:
    raise ValueError("Proxy-Authorization: Basic AUTH-SECRET-5d0e")
except ValueError:
    log.exception("a failure")
"""
    # A real process: logs.setup replaces the root handlers, which pytest's own capture uses.
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    assert proc.returncode == 0, proc.stderr
    written = log_file.read_text(encoding="utf-8")
    for out in (written, proc.stderr):
        for secret in LEAKS:
            assert secret not in out, out
        assert out.count(MARKER) == 4, out
        assert "request head: GET / HTTP/1.1" in out and "example.test/f" in out
        assert "ValueError: Proxy-Authorization:" in out  # the traceback is kept, redacted


def test_the_freight_host_log_is_redacted(tmp_path: Path) -> None:
    """freight-host logs why it cannot reach the daemon, and that reason quotes the URL of
    daemon.json: one carrying userinfo never puts the password in the host's log."""
    home = tmp_path / "host-home"
    (home / "state").mkdir(parents=True)
    (home / "state" / "daemon.json").write_text(json.dumps({
        "pid": os.getpid(), "url": "ws://alice:AUTH-SECRET-5d0e@192.0.2.1:9/"}))
    request = encode({"jsonrpc": "2.0", "id": 1, "method": "version"})
    host = subprocess.run([str(Path(FREIGHT).with_name("freight-host")),
                           "chrome-extension://redact/"], input=request, env=env_for(home),
                          capture_output=True, timeout=60)
    assert host.returncode == 0, host.stderr
    host_logs = list(home.rglob("freight-host.log"))
    assert host_logs, list(home.rglob("*"))
    written = host_logs[0].read_text(encoding="utf-8")
    assert f"ws://{MARKER}@192.0.2.1:9/" in written, written  # the reason is kept, redacted
    for secret in LEAKS:
        assert secret not in written


# -- redact_text, for any secret ----------------------------------------------------------------

NAMES = st.sampled_from(["Cookie", "cookie", "Set-Cookie", "Authorization", "AUTHORIZATION",
                         "Proxy-Authorization", "proxy-authorization"])
#: A header value: printable, no line break (a line break would end the header line).
VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1)
#: RFC 3986 §3.2.1: userinfo = *( unreserved / pct-encoded / sub-delims / ":" ).
USERINFO = st.text("abcXYZ019-._~!$&'()*+,;=:%", min_size=1)
#: Text around: anything, even line breaks and URLs, but no "@" (no userinfo of its own).
AROUND = st.text(st.characters(blacklist_characters="@", blacklist_categories=("Cs",)))


def usable(secret: str, redacted: str) -> bool:
    """Whether ``secret`` can be looked for: it is not blank, and it does not appear by
    chance in the text as it should be once redacted (around it, in the name, the marker)."""
    return secret.strip() != "" and secret not in redacted


@settings(max_examples=300, deadline=None)
@given(NAMES, VALUES, AROUND, AROUND, st.sampled_from(["\r\n", "\n", "\r"]))
def test_a_secret_header_value_never_survives(
    name: str, value: str, before: str, after: str, newline: str
) -> None:
    if not usable(value, f"{before}{newline}{name}: {MARKER}{newline}{after}"):
        return
    out = redact_text(f"{before}{newline}{name}: {value}{newline}{after}")
    assert value not in out
    assert out.startswith(before) and name in out and MARKER in out


@settings(max_examples=300, deadline=None)
@given(NAMES, VALUES, AROUND, AROUND, st.sampled_from(["'", '"']))
def test_a_secret_header_in_a_repr_never_survives(
    name: str, value: str, before: str, after: str, quote: str
) -> None:
    quoted = json.dumps(value) if quote == '"' else repr(value)
    if quoted[0] != quote:
        return  # repr chose the other quote: that case is drawn too
    inner = quoted[1:-1]  # the value as the repr shows it
    if not usable(inner, f"{before} {{{quote}{name}{quote}: {quote}{MARKER}{quote}}} {after}"):
        return
    out = redact_text(f"{before} {{{quote}{name}{quote}: {quoted}}} {after}")
    assert inner not in out
    assert out.startswith(before) and MARKER in out


@settings(max_examples=300, deadline=None)
@given(USERINFO, AROUND, AROUND, st.sampled_from(["http", "https", "ws", "ftp"]))
def test_url_userinfo_never_survives(userinfo: str, before: str, after: str, scheme: str) -> None:
    if not usable(userinfo, f"{before} {scheme}://{MARKER}@example.test:8080/p?q=1 {after}"):
        return
    out = redact_text(f"{before} {scheme}://{userinfo}@example.test:8080/p?q=1 {after}")
    assert userinfo not in out
    assert f"{scheme}://{MARKER}@example.test:8080/p?q=1" in out


SECRET_NAMES = ("cookie", "authorization")  # set-cookie and proxy-authorization hold these


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_text_without_secrets_is_unchanged(text: str) -> None:
    if "@" in text or any(name in text.lower() for name in SECRET_NAMES):
        return
    assert redact_text(text) == text


def test_plain_words_and_urls_are_left_alone() -> None:
    for text in ("the Cookie header holds a character beyond Latin-1",
                 "GET http://example.test/a@b?x=y@z HTTP/1.1\r\nAccept: */*",
                 "mail bob@example.test", "X-Cookie-Hint: 1"):
        assert redact_text(text) == text
    assert redact_text("Cookie: a=b; c=d\r\nAccept: x") == f"Cookie: {MARKER}\r\nAccept: x"
    assert redact_text("(b'cookie', b'sid=1')") == f"(b'cookie', b'{MARKER}')"
