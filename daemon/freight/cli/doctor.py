"""`freight doctor`: check every link between the browser and the daemon, and say the fix.

The link that users see break most often is the one between the browser and the download
manager: a manifest in the wrong folder, a launcher that points at a Python that is gone, a
daemon that is not running, a token that changed. Each check here tests the real thing (a real
``version`` call, a real launcher started and spoken to through native messaging framing)
rather than guessing from files, and pairs its verdict with the command that fixes it.

Statuses: ``ok``; ``warn`` (works, but worse than it could: secrets in a file, no tray);
``fail`` (something the browser link needs is broken). The exit code is 0 unless a check
failed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from freight import config
from freight.cli import traycheck
from freight.cli.terminal import say
from freight.units import format_size

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_FREE = 100 * 1024 * 1024  # below this a download is likely to fail: fail
LOW_FREE = 1024 * 1024 * 1024  # below this: warn


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _port_in(paths: config.Paths) -> str:
    """The port daemon.json names, for a fix to quote ("?" when it names none)."""
    from freight import daemonfile
    from freight.errors import DaemonError

    try:
        return str(urlsplit(str(daemonfile.read(paths)["url"])).port or "?")
    except (DaemonError, ValueError):
        return "?"


def check_daemon(paths: config.Paths, timeout: float) -> tuple[Check, Any]:
    """A real ``version`` call. Returns the check and an open client (or None)."""
    from freight.client import Client
    from freight.errors import AuthError, FreightError, ImpostorError

    try:
        client = Client.connect(paths, timeout=timeout)
        version = client.call("version", timeout=timeout)
    except ImpostorError as exc:
        # Another program answers on the daemon's port: starting Freight again cannot help.
        from freight.ports import who_holds

        port = _port_in(paths)
        holder = who_holds(int(port)) if port.isdigit() else "another program"
        return Check("daemon", FAIL, f"{exc}; port {port} is held by {holder}",
                     f"see which program listens there (ss -ltnp 'sport = :{port}'), stop it,"
                     " then: freight start"), None
    except AuthError as exc:
        return Check("daemon", FAIL, str(exc),
                     "restart the daemon so that it reads the current token:"
                     " freight stop && freight start"), None
    except FreightError as exc:
        from freight.cli.portcheck import daemon_down

        return Check("daemon", FAIL, *daemon_down(paths, exc)), None
    return Check("daemon", OK, f"freight {version.get('version')} (protocol"
                 f" {version.get('protocol')}, pid {version.get('pid')}) at {client.url}"), client


def check_token(paths: config.Paths) -> Check:
    from freight import secrets

    try:
        token = secrets.get_token(paths)
        info = secrets.backend_info(paths)
    except Exception as exc:  # any keyring failure is the finding itself
        return Check("token", FAIL, f"cannot read the API token: {exc}",
                     "unlock the OS keyring, or set PYTHON_KEYRING_BACKEND to a working one")
    if not token:
        return Check("token", FAIL, "the API token is empty", "freight token --rotate")
    if info.get("fallback"):
        return Check("token", WARN,
                     f"no OS keyring works: secrets are kept in 0600 files in {info.get('path')}",
                     "install and unlock a Secret Service keyring (gnome-keyring, KWallet),"
                     " then restart the daemon")
    return Check("token", OK, f"kept in {info.get('backend')}")


def _manifest_targets(paths: config.Paths) -> list[tuple[str, Path, str, bool]]:
    """(label, manifest path, family, recorded) of every browser registered or found."""
    from freight.cli import browsers, effects
    from freight.cli.browsers import HOST_NAME

    ctx = browsers.Context.for_paths(paths)
    try:
        record = effects.load_record(ctx)
    except Exception:
        record = None
    recorded = record.browsers if record else []
    names = list(dict.fromkeys(recorded + effects.detect_browsers(ctx)))
    targets = []
    for name in names:
        browser = browsers.BROWSERS.get(name)
        if browser is not None:
            targets.append((browser.label, browsers.host_manifest_path(browser, ctx),
                            browser.family, name in recorded))
    for udd in record.user_data_dirs if record else []:
        targets.append((f"profile {udd}", Path(udd) / "NativeMessagingHosts" /
                        f"{HOST_NAME}.json", "chromium", True))
    return targets


def check_manifest(label: str, path: Path, family: str,
                   recorded: bool = True) -> tuple[Check, Path | None]:
    """One browser's host manifest. Returns the check and the launcher it names (if valid)."""
    from freight.cli import browsers
    from freight.cli.browsers import HOST_NAME

    name = f"manifest {label}"
    # A custom profile is written only when named: a plain `freight install` leaves it be.
    fix = (f"freight install --user-data-dir {shlex.quote(str(path.parent.parent))}"
           if label.startswith("profile ") else
           f"freight install --browser {_browser_name(label)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not recorded:  # installed, but the user never registered Freight with it
            return Check(name, WARN, f"{label} is installed but has no Freight host manifest"
                         f" ({path})", fix), None
        return Check(name, FAIL, f"missing: {path}", fix), None
    except (OSError, ValueError) as exc:
        return Check(name, FAIL, f"{path} is not valid JSON: {exc}", fix), None
    problems = []
    if not isinstance(data, dict):
        return Check(name, FAIL, f"{path} is not a JSON object", fix), None
    if data.get("name") != HOST_NAME:
        problems.append(f"name is {data.get('name')!r}, not {HOST_NAME!r}")
    if data.get("type") != "stdio":
        problems.append("type is not 'stdio'")
    launcher = Path(str(data.get("path", "")))
    if not launcher.is_absolute():
        problems.append(f"path {str(launcher)!r} is not absolute")
    elif not launcher.is_file():
        problems.append(f"the launcher {launcher} does not exist")
    elif sys.platform != "win32" and not os.access(launcher, os.X_OK):
        problems.append(f"the launcher {launcher} is not executable")
    if family == "firefox":
        if browsers.GECKO_ID not in (data.get("allowed_extensions") or []):
            problems.append(f"allowed_extensions does not list {browsers.GECKO_ID}")
    else:
        own = browsers.read_extension_id(browsers.default_extension_manifest())
        origins = data.get("allowed_origins") or []
        if own and f"chrome-extension://{own}/" not in origins:
            problems.append(f"allowed_origins does not list chrome-extension://{own}/")
        elif not origins:
            problems.append("allowed_origins is empty")
    if problems:
        return Check(name, FAIL, f"{path}: " + "; ".join(problems), fix), None
    return Check(name, OK, f"{path} → {launcher}"), launcher


def _browser_name(label: str) -> str:
    from freight.cli import browsers

    for name, browser in browsers.BROWSERS.items():
        if browser.label == label:
            return name
    return label


# The doctor plays the browser's end of native messaging (a 4-byte length in native byte
# order, then UTF-8 JSON), written here rather than taken from freight_host: the host imports
# freight, never the reverse, and a second implementation of the browser's side checks the
# host's codec the way a browser would.
_LENGTH = struct.Struct("=I")
_BROKEN = object()  # the stream ended or broke: no more answers
_UNREADABLE = object()  # an answer arrived but is not JSON


def _frame_as_browser(message: Any) -> bytes:
    data = json.dumps(message).encode("utf-8")
    return _LENGTH.pack(len(data)) + data


def _read_exactly(stream: Any, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_as_browser(stream: Any) -> Any:
    head = _read_exactly(stream, _LENGTH.size)
    if head is None:
        return _BROKEN
    (length,) = _LENGTH.unpack(head)
    if length > 1024 * 1024:  # what browsers accept from a host (Chromium's limit)
        return _BROKEN
    body = _read_exactly(stream, length)
    if body is None:
        return _BROKEN
    try:
        return json.loads(body)
    except ValueError:
        return _UNREADABLE


def check_launcher(launcher: Path, timeout: float, daemon_ok: bool) -> Check:
    """Start the launcher as a browser would and speak native messaging to it."""
    from freight.cli import browsers

    name = f"launcher {launcher}"
    own = browsers.read_extension_id(browsers.default_extension_manifest()) or "unknown"
    requests = [{"jsonrpc": "2.0", "id": "doctor-1", "method": "host.hello",
                 "params": {"start": False}}]
    if daemon_ok:
        requests.append({"jsonrpc": "2.0", "id": "doctor-2", "method": "version"})
    try:
        proc = subprocess.Popen([str(launcher), f"chrome-extension://{own}/"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as exc:
        return Check(name, FAIL, f"cannot start it: {exc}", "freight install")
    assert proc.stdin is not None and proc.stdout is not None
    answers: list[Any] = []

    def read() -> None:
        assert proc.stdout is not None
        while len(answers) < len(requests):
            answer = _read_as_browser(proc.stdout)
            if answer is _BROKEN:
                return
            answers.append(answer)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.stdin.write(b"".join(_frame_as_browser(r) for r in requests))
        proc.stdin.flush()
    except OSError:
        pass
    reader.join(timeout)
    try:
        proc.stdin.close()
        proc.wait(timeout)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    stderr = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()
    fix = "freight install (rewrites the launcher for this Python); see the host log"
    if any(a is _UNREADABLE for a in answers) or not answers:
        tail = stderr.splitlines()[-1] if stderr else f"exit code {proc.returncode}"
        return Check(name, FAIL, f"no valid answer through native messaging ({tail})", fix)
    hello = answers[0]
    if not isinstance(hello, dict) or hello.get("id") != "doctor-1":
        return Check(name, FAIL, f"unexpected answer: {hello!r}"[:300], fix)
    if "error" in hello:
        reason = hello["error"].get("data", {}).get("reason", hello["error"].get("message"))
        if hello["error"].get("code") == -32010 and not daemon_ok:
            return Check(name, OK, f"answers host.hello (the daemon is down: {reason})")
        return Check(name, FAIL, f"host.hello failed: {reason}", fix)
    detail = f"answers host.hello (host {hello['result'].get('host')})"
    if daemon_ok:
        version = answers[1] if len(answers) > 1 else None
        if not isinstance(version, dict) or "result" not in version:
            return Check(name, FAIL, f"version through the host failed: {version!r}"[:300], fix)
        detail += f" and version (daemon {version['result'].get('version')})"
    return Check(name, OK, detail)


def check_downloads(folder: str) -> Check:
    name = "downloads folder"
    path = Path(folder).expanduser()
    probe_dir = path
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent  # it is created on the first download
    if not probe_dir.is_dir():
        return Check(name, FAIL, f"{probe_dir} is not a folder",
                     "freight settings download_dir /a/folder")
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".freight-doctor-"):
            pass
    except OSError as exc:
        return Check(name, FAIL, f"{probe_dir} is not writable: {exc}",
                     f"chmod u+w {probe_dir}, or: freight settings download_dir /a/folder")
    free = shutil.disk_usage(probe_dir).free
    detail = f"{path} writable, {format_size(free)} free"
    if free < MIN_FREE:
        return Check(name, FAIL, detail, "free some disk space, or choose another folder")
    if free < LOW_FREE:
        return Check(name, WARN, detail, "free some disk space")
    return Check(name, OK, detail)


def check_tray(environ: dict[str, str] | None = None, timeout: float = 10.0, *,
               report: dict[str, Any] | None = None) -> Check:
    """The tray as the daemon shows it (:mod:`freight.cli.traycheck`)."""
    return Check("tray", *traycheck.check_tray(environ, timeout, report=report))


def run_checks(paths: config.Paths, timeout: float = 10.0) -> list[Check]:
    checks: list[Check] = []
    daemon, client = check_daemon(paths, timeout)
    checks.append(daemon)
    checks.append(check_token(paths))
    download_dir = ""
    tray: dict[str, Any] | None = None
    if client is not None:
        try:
            download_dir = client.call("get_settings", timeout=timeout)["settings"].get(
                "download_dir", "")
        except Exception:
            download_dir = ""
        try:
            tray = client.call("status", timeout=timeout).get("tray")
        except Exception:
            tray = None  # probed from here instead, and said so
        client.close()
    launchers: list[Path] = []
    targets = _manifest_targets(paths)
    if not any(recorded for *_, recorded in targets):
        checks.append(Check("browsers", FAIL, "no browser has Freight's host registered",
                            "freight install (or: freight install --browser NAME)"))
    for label, path, family, recorded in targets:
        check, launcher = check_manifest(label, path, family, recorded)
        checks.append(check)
        if launcher is not None and launcher not in launchers:
            launchers.append(launcher)
    for launcher in launchers:
        checks.append(check_launcher(launcher, timeout, daemon.status == OK))
    checks.append(check_downloads(download_dir or config.default_download_dir()))
    checks.append(check_tray(timeout=timeout, report=tray))
    return checks


_MARK = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL"}


def main(json_output: bool = False, timeout: float = 10.0) -> int:
    paths = config.paths_from_env()
    checks = run_checks(paths, timeout)
    healthy = all(c.status != FAIL for c in checks)
    if json_output:
        print(json.dumps({"ok": healthy, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            say(f"[{_MARK[c.status]}] {c.name}: {c.detail}")
            if c.fix and c.status != OK:
                say(f"       fix: {c.fix}")
        print("all is well" if healthy else "some checks failed: see the fixes above")
    return 0 if healthy else 1
