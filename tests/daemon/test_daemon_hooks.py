"""The ``on_complete`` command hook and the ``webhook``, in a real daemon: a real script runs,
a real HTTP server on 127.0.0.1 is posted to."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from freight.errors import InputError

#: Writes the FREIGHT_* variables it was given, and its argv, to the file named by argv[1].
RECORD = (
    "import json, os, sys; "
    "env = {k: v for k, v in os.environ.items() if k in "
    "('FREIGHT_PATH', 'FREIGHT_ID', 'FREIGHT_URL', 'FREIGHT_STATE')}; "
    "open(sys.argv[1] + '.tmp', 'w').write(json.dumps({'env': env, 'argv': sys.argv[1:]})); "
    "os.replace(sys.argv[1] + '.tmp', sys.argv[1])"
)


def test_on_complete_runs_the_command_with_the_download_in_its_environment(
    daemon: DaemonProcess, fault_server: FaultServer, tmp_path: Path
) -> None:
    record = tmp_path / "hook.json"
    data = make_data(30_000)
    url = fault_server.add("/done.bin", data=data)
    with daemon.client() as c:
        argv = [sys.executable, "-c", RECORD, str(record)]
        assert c.call("set_settings", settings={"on_complete": argv})["settings"][
            "on_complete"] == argv
        download_id = c.call("add", url=url)["id"]
        wait_for(record.exists)
        row = c.call("get", id=download_id)
    got = json.loads(record.read_text())
    assert got["argv"] == [str(record)]  # the list as given: nothing appended, no shell
    assert got["env"] == {"FREIGHT_PATH": row["path"], "FREIGHT_ID": str(download_id),
                          "FREIGHT_URL": url, "FREIGHT_STATE": "completed"}
    assert Path(row["path"]).read_bytes() == data


def test_a_failing_hook_is_logged_with_its_exit_code_and_stderr(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    url = fault_server.add("/x.bin", data=b"x" * 2000)
    script = "import sys; sys.stderr.write('hook says boom\\n'); sys.exit(3)"
    with daemon.client() as c:
        c.call("set_settings", settings={"on_complete": [sys.executable, "-c", script]})
        c.call("add", url=url)
        line = wait_for(lambda: next(
            (ln for ln in daemon.paths.log_file.read_text().splitlines()
             if "on_complete" in ln and "exited with 3" in ln), None))
        assert "hook says boom" in line
        # The daemon goes on: the next download completes as well.
        second = c.call("add", url=fault_server.add("/y.bin", data=b"y" * 10))["id"]
        wait_for(lambda: c.call("get", id=second)["state"] == "completed")


def test_a_hook_that_hangs_is_killed_after_its_timeout_and_downloads_go_on(
    daemon: DaemonProcess, fault_server: FaultServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "hook.pid"
    # Writes its pid, then sleeps far longer than any test runs.
    script = ("import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
              "time.sleep(3600)")
    with daemon.client() as c:
        c.call("set_settings", settings={
            "on_complete": [sys.executable, "-c", script, str(pid_file)],
            "on_complete_timeout": 1.0})
        c.call("add", url=fault_server.add("/slow-hook.bin", data=b"s" * 100))
        wait_for(lambda: pid_file.exists() and pid_file.read_text())
        pid = int(pid_file.read_text())
        # No hook for the next one: it would still sleep when the daemon stops, and a hook
        # that outlives the daemon runs on (in its own session) past any test.
        c.call("set_settings", settings={"on_complete": []})
        # While the hook hangs, another download completes: the hook holds nothing.
        other = c.call("add", url=fault_server.add("/next.bin", data=b"n" * 100))["id"]
        wait_for(lambda: c.call("get", id=other)["state"] == "completed")
        wait_for(lambda: "was killed" in daemon.paths.log_file.read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A killed child not yet reaped by the daemon is a zombie: gone as well.
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")

    wait_for(gone)


@pytest.mark.parametrize("value, words", [
    ("notify-send done", "list"),
    ([], None),
    ([""], "empty"),
    (["relative-name-that-does-not-exist-9f3"], "not found"),
])
def test_on_complete_takes_an_argv_list_and_never_a_shell_string(
    daemon: DaemonProcess, value: Any, words: str | None
) -> None:
    with daemon.client() as c:
        if words is None:
            assert c.call("set_settings", settings={"on_complete": value})["settings"][
                "on_complete"] == value
            return
        with pytest.raises(InputError) as refused:
            c.call("set_settings", settings={"on_complete": value})
        assert words in str(refused.value) and refused.value.data["setting"] == "on_complete"
        assert c.call("get_settings")["settings"]["on_complete"] == []


def test_freight_settings_takes_the_hook_as_a_json_list_and_refuses_words(
    daemon: DaemonProcess,
) -> None:
    def freight(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "freight", *args], env=daemon.env,
                              capture_output=True, text=True, timeout=60)

    words = freight("settings", "on_complete", f"{sys.executable} -c pass")
    assert words.returncode == 2 and "not a string" in words.stderr
    argv = json.dumps([sys.executable, "-c", "pass"])
    ok = freight("settings", "on_complete", argv)
    assert ok.returncode == 0, ok.stderr
    with daemon.client() as c:
        assert c.call("get_settings")["settings"]["on_complete"] == json.loads(argv)


class _Recorder(http.server.BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_gets_a_json_post_of_each_completion(
    daemon: DaemonProcess, fault_server: FaultServer,
    receiver: http.server.ThreadingHTTPServer,
) -> None:
    url = fault_server.add("/w.bin", data=b"w" * 4000)
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/done"
    posts = receiver.posts  # type: ignore[attr-defined]
    with daemon.client() as c:
        c.call("set_settings", settings={"webhook": hook})
        download_id = c.call("add", url=url)["id"]
        wait_for(lambda: posts)
        row = c.call("get", id=download_id)
    path, headers, body = posts[0]
    assert path == "/done"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"id": download_id, "url": url, "path": row["path"],
                                "state": "completed", "name": "w.bin", "size": 4000}


@pytest.mark.parametrize("value", ["ftp://127.0.0.1/x", "file:///etc/passwd", "not a url"])
def test_the_webhook_is_http_or_https_only(daemon: DaemonProcess, value: str) -> None:
    with daemon.client() as c:
        with pytest.raises(InputError) as refused:
            c.call("set_settings", settings={"webhook": value})
        assert "http" in str(refused.value)
        assert c.call("set_settings", settings={"webhook": ""})["settings"]["webhook"] == ""


def test_without_a_hook_the_hub_gets_no_listener(tmp_path: Path) -> None:
    """A listener makes every event build its row: none is added until a hook is set."""
    import asyncio

    from freight import config
    from freight.daemon.events import Hub, Session
    from freight.daemon.handler import ApiHandler
    from freight.daemon.scheduler import Scheduler
    from freight.store import Store

    paths = config.paths_from_env({"FREIGHT_HOME": str(tmp_path / "freight")}).ensure()
    store = Store(paths.database)

    async def check() -> None:
        hub = Hub()
        handler = ApiHandler(paths, store, Scheduler(store, hub), hub)
        assert not hub.wanted("download.changed")  # nobody would hear it: not built
        handler.set_settings(Session("test"), {"notify": False})
        assert not hub.wanted("download.changed")
        handler.set_settings(Session("test"), {"on_complete": [sys.executable, "-c", "pass"]})
        assert hub.wanted("download.changed", rows=True)

    try:
        asyncio.run(check())
    finally:
        store.close()
