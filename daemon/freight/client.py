"""A small synchronous client of the daemon's API, for the CLI, and the one way to open an
authenticated socket to the daemon (:func:`open_daemon_socket`), which the native host uses too.

    with Client.connect(paths) as client:
        client.call("add", url="https://...")
        client.call("subscribe")
        for event, params in client.notifications(timeout=1.0): ...

The daemon is found through ``paths.daemon_file`` (docs/PROTOCOL.md "Finding and
authenticating"), and the client and the daemon prove to each other that they hold the token
(:mod:`freight.handshake`) before anything else is sent; :func:`start_daemon` starts one in
the background when none answers.
"""

from __future__ import annotations

import collections
import http.client
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from freight import config, daemonfile, handshake, rpc, starterror
from freight.errors import (
    AuthError,
    DaemonError,
    FreightError,
    NotFound,
)


class RemoteCallError(DaemonError):
    """The daemon answered with a JSON-RPC error that maps to no narrower exception."""

    def __init__(self, message: str, *, code: int, **data: Any) -> None:
        super().__init__(message, code=code, **data)
        self.code = code


def _error_from(error: dict[str, Any]) -> FreightError:
    code = error.get("code", rpc.INTERNAL_ERROR)
    message = str(error.get("message", "error"))
    data = error.get("data") or {}
    cls = rpc.error_class(code) if isinstance(code, int) else None
    if cls is not None:
        exc = cls(message, **{k: v for k, v in data.items() if k != "kind"})
    else:
        exc = RemoteCallError(message, code=code, **{k: v for k, v in data.items() if k != "code"})
    exc.data["code"] = code
    return exc


class DaemonUnreachable(DaemonError):
    """Nothing answered at the daemon's URL (as opposed to a daemon that refused us)."""


#: Largest answer to ``GET /challenge`` read; the real one is about 150 bytes.
CHALLENGE_MAX = 4096


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname not in ("127.0.0.1", "localhost"):
        raise DaemonError(f"{url!r} is not a loopback ws:// URL")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise DaemonError(f"{url!r} names no port")
    return parts.hostname, port


def authorization(url: str, token: str, *, timeout: float) -> str:
    """Step 1 of the handshake (docs/PROTOCOL.md): ``GET /challenge`` at the daemon of ``url``,
    check its proof, and return the ``Authorization`` value for the upgrade. Neither step
    sends the token; when the proof fails, nothing more is sent at all.

    Raises :class:`~freight.errors.ImpostorError` when the answer proves nothing,
    :class:`~freight.errors.AuthError` when the daemon holds another token,
    :class:`~freight.errors.DaemonError` for a refusal, :class:`DaemonUnreachable` when nothing
    answers.
    """
    host, port = _endpoint(url)
    attempt = handshake.ClientHandshake(token, port, url)
    # http.client never goes through a proxy: loopback traffic stays on loopback.
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", handshake.CHALLENGE_PATH, headers=attempt.challenge_headers())
        reply = conn.getresponse()
        body = reply.read(CHALLENGE_MAX + 1)
        status = reply.status
    except (OSError, http.client.HTTPException) as exc:
        raise DaemonUnreachable(f"cannot reach the daemon at {url}: {exc}") from exc
    finally:
        conn.close()
    if status == 401:
        # The daemons before this handshake answered every plain request with 401.
        raise AuthError(f"the daemon at {url} refused the challenge (HTTP 401): an older"
                        " Freight daemon? restart it: freight stop && freight start",
                        status=status)
    if status != 200:
        reason = body[:200].decode("utf-8", "replace").strip()
        raise DaemonError(f"the daemon refused the challenge (HTTP {status}: {reason})",
                          status=status)
    try:
        answer = json.loads(body) if len(body) <= CHALLENGE_MAX else None
    except ValueError:
        answer = None
    return attempt.authorization(answer)


def open_daemon_socket(
    url: str, token: str, *, timeout: float, max_size: int | None, close_timeout: float = 10.0
) -> ClientConnection:
    """Open the WebSocket to the daemon at ``url`` (a loopback URL from daemon.json) after the
    mutual handshake of :func:`authorization`, never through a proxy. Every client (the CLI,
    doctor, ``freight start``'s ping, the native host) comes through here.

    Raises what :func:`authorization` raises; :class:`~freight.errors.AuthError` when the
    daemon refuses the proof (401) and :class:`~freight.errors.DaemonError` for any other
    refusal of the upgrade (``data["status"]``).
    """
    header = authorization(url, token, timeout=timeout)
    try:
        return connect(
            url,
            additional_headers={"Authorization": header},
            proxy=None,  # never send loopback traffic through http_proxy
            open_timeout=timeout,
            close_timeout=close_timeout,
            max_size=max_size,
            compression=None,  # loopback: deflate would only cost CPU on every event
        ).__enter__()  # websockets 17 wants the context-manager form; 14 accepts it too
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 401:
            raise AuthError("the daemon refused our proof (HTTP 401; was the token rotated?)",
                            status=status) from exc
        raise DaemonError(f"the daemon refused the connection (HTTP {status})",
                          status=status) from exc
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise DaemonUnreachable(f"cannot reach the daemon at {url}: {exc}") from exc


def daemon_info(paths: config.Paths) -> dict[str, Any] | None:
    """daemon.json of a daemon that still runs (its pid exists and it holds the instance
    lock), else None: a stale file is never trusted with a connection."""
    return daemonfile.read_live(paths)


class Client:
    def __init__(self, ws: ClientConnection, url: str) -> None:
        self.ws = ws
        self.url = url
        self._ids = itertools.count(1)
        self._pending: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._states_by_get = False

    @classmethod
    def connect(
        cls, paths: config.Paths, *, timeout: float = 5.0, url: str | None = None
    ) -> Client:
        backend = None
        if url is None:
            info = daemon_info(paths)
            if info is None:
                raise DaemonError("the Freight daemon is not running (start it: freight start)")
            url, backend = str(info["url"]), info.get("secrets")
        from freight import secrets  # imported when used: the native host reads the token itself

        token = secrets.get_token(paths, daemon_backend=backend)
        # The daemon is trusted; a long list may pass 1 MiB.
        ws = open_daemon_socket(url, token, timeout=timeout, max_size=None)
        return cls(ws, url)

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, timeout: float | None = 60.0, **params: Any) -> Any:
        """Send one request and return its result; raise the mapped error on an error reply.

        Notifications that arrive meanwhile are kept for :meth:`notifications`.
        """
        outcome = self.call_many(method, [params], timeout)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def call_many(
        self, method: str, params: list[dict[str, Any]], timeout: float | None = 60.0,
        window: int = 64,
    ) -> list[Any]:
        """Send one request per ``params`` entry, up to ``window`` unanswered at a time, and
        return their results in order; an error reply becomes the mapped exception in its
        place (the others still ran). One connection's requests are answered in the order
        they were sent, so pipelining them saves a round trip each (`freight add` of many
        URLs), and the window keeps a slow daemon from queueing thousands of replies."""
        if window < 1:
            raise ValueError("window must be at least 1")
        outcomes: list[Any] = [None] * len(params)
        waiting: dict[int, int] = {}  # request id → index in params
        sent = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while sent < len(params) or waiting:
                while sent < len(params) and len(waiting) < window:
                    request_id = next(self._ids)
                    waiting[request_id] = sent
                    self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id,
                                             "method": method, "params": params[sent]}))
                    sent += 1
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                reply = json.loads(self.ws.recv(timeout=left))
                if "id" not in reply and "method" in reply:
                    self._pending.append((reply["method"], reply.get("params") or {}))
                    continue
                index = waiting.pop(reply.get("id"), None)  # type: ignore[arg-type]
                if index is None:
                    if reply.get("id") is None and "error" in reply:
                        raise _error_from(reply["error"])
                    continue
                outcomes[index] = (_error_from(reply["error"]) if "error" in reply
                                   else reply.get("result"))
        except TimeoutError:
            raise DaemonError(f"the daemon did not answer {method} in time") from None
        except ConnectionClosed as exc:
            raise DaemonError(f"the daemon closed the connection: {exc}") from exc
        return outcomes

    def states(self, ids: list[int]) -> dict[int, tuple[str, str | None]]:
        """id → (state, error_kind) of each of ``ids``; NotFound for one that names no
        download. ``states`` requests of up to :data:`~freight.rpc.STATES_MAX_IDS` ids, or,
        from a daemon older than ``states`` ("method not found"), one pipelined ``get`` per
        id (as every client did before)."""
        found: dict[int, tuple[str, str | None]] = {}
        for start in range(0, len(ids), rpc.STATES_MAX_IDS):
            chunk = ids[start:start + rpc.STATES_MAX_IDS]
            answer = None if self._states_by_get else self._ask_states(chunk)
            if answer is not None:
                if answer["unknown"]:
                    first = answer["unknown"][0]
                    raise NotFound(f"no download with id {first}", id=first)
                found.update((int(i), (d["state"], d.get("error_kind")))
                             for i, d in answer["states"].items())
                continue
            rows = self.call_many("get", [{"id": i} for i in chunk])
            for download_id, d in zip(chunk, rows, strict=True):
                if isinstance(d, BaseException):
                    raise d
                found[download_id] = (d["state"], d.get("error_kind"))
        return found

    def _ask_states(self, ids: list[int]) -> dict[str, Any] | None:
        try:
            return dict(self.call("states", ids=ids))
        except FreightError as exc:
            if exc.data.get("code") != rpc.METHOD_NOT_FOUND:
                raise
            self._states_by_get = True  # an older daemon: ask it the old way from now on
            return None

    def notifications(self, timeout: float | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(event, params)``; stops after ``timeout`` seconds without a message."""
        while True:
            while self._pending:
                yield self._pending.popleft()
            try:
                message = json.loads(self.ws.recv(timeout=timeout))
            except TimeoutError:
                return
            except ConnectionClosed:
                return
            if "method" in message and "id" not in message:
                yield message["method"], message.get("params") or {}


# -- starting a daemon -----------------------------------------------------------------------


def daemon_command() -> list[str]:
    """How to run ``freight daemon`` with this very Python.

    With its tray: the daemon itself decides from the DISPLAY / WAYLAND_DISPLAY it inherits
    (the native host runs this from the browser, which has them) whether to show an icon.
    """
    return [sys.executable, "-m", "freight", "daemon"]


def ping(paths: config.Paths, timeout: float = 2.0) -> dict[str, Any] | None:
    """The daemon's ``version`` reply, or None if no daemon answers."""
    try:
        with Client.connect(paths, timeout=timeout) as client:
            result = client.call("version", timeout=timeout)
            return dict(result)
    except FreightError:
        return None


def start_daemon(
    paths: config.Paths, timeout: float = 10.0, port: int | None = None
) -> dict[str, Any]:
    """Make sure a daemon runs; start one detached if needed (on ``port`` when given, which
    the daemon then records for every later start). Returns its daemon.json.

    Raises :class:`DaemonStartFailed` with the daemon's own words on why it could not start
    (:mod:`freight.starterror`) and the command that fixes it.
    """
    paths.ensure()
    if ping(paths) is not None:
        info = daemon_info(paths)
        assert info is not None
        return info
    starterror.clear(paths)  # what the daemon started now says is the news, not an old record
    command = daemon_command() + ([] if port is None else ["--port", str(port)])
    # The daemon writes its own log file; its stderr (tracebacks of a crash at start) goes
    # next to it, not into it, so that no line is written twice.
    log_file = open(paths.daemon_stderr_file, "ab")  # noqa: SIM115 - to the child
    stderr_from = log_file.tell()
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # setsid: the daemon outlives this terminal
            close_fds=True,
        )
    finally:
        log_file.close()
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    while time.monotonic() < deadline:
        if daemon_info(paths) is not None and ping(paths, timeout=1.0) is not None:
            info = daemon_info(paths)
            assert info is not None
            return info
        if exited_at is None and proc.poll() is not None:
            exited_at = time.monotonic()
        # Exit code 1 may mean another daemon won a start race: give it a moment to answer.
        if exited_at is not None and time.monotonic() - exited_at > 2.0:
            raise _start_failed(paths, proc.returncode, stderr_from)
        time.sleep(0.05)
    raise DaemonStartFailed(f"the daemon did not answer within {timeout:.0f} s",
                            reason=f"the daemon did not answer within {timeout:.0f} s",
                            fix=f"freight doctor (the log: {paths.log_file})", cause="failed")


class DaemonStartFailed(DaemonError):
    """The daemon could not start; ``data`` holds ``reason``, ``fix`` and ``cause`` (the
    start-error kind) and, for a port, ``port``."""


def _start_failed(paths: config.Paths, code: int | None, stderr_from: int) -> DaemonStartFailed:
    recorded = starterror.read(paths)
    if recorded is not None:
        return DaemonStartFailed(recorded.message, **recorded.data())
    # No record: the daemon died before it could write one (a crash): its last words are
    # what it wrote to stderr since we started it.
    last = ""
    try:
        with open(paths.daemon_stderr_file, "rb") as f:
            f.seek(stderr_from)
            lines = f.read(64 * 1024).decode("utf-8", "replace").strip().splitlines()
        last = lines[-1].strip() if lines else ""
    except OSError:
        pass
    reason = f"the daemon exited with code {code} at start" + (f": {last}" if last else "")
    return DaemonStartFailed(reason, reason=reason, cause="failed",
                             fix=f"freight doctor (the log: {paths.daemon_stderr_file})")
