"""The host's end of the link to the daemon: where it listens (daemon.json, trusted only while
that daemon runs), its token, starting it with `freight start` when nothing runs, and opening
the socket with the mutual handshake (:func:`freight.client.open_daemon_socket`, as the CLI
does).

Every failure is an :class:`Unavailable` whose text is the reason the extension is given with
-32010 ``daemon_unavailable``; :class:`NotRunning` is the one worth starting the daemon for.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from freight import daemonfile, starterror
from freight.client import DaemonUnreachable, open_daemon_socket
from freight.config import Paths
from freight.errors import DaemonError
from websockets.sync.client import ClientConnection

log = logging.getLogger("freight_host")

#: Largest daemon → host message accepted; larger ones could not reach the browser anyway.
FROM_DAEMON_MAX = 8 * 1024 * 1024
START_TIMEOUT = 30.0  # `freight start` returns once the daemon accepts connections
CONNECT_TIMEOUT = 5.0


class Unavailable(Exception):
    """The daemon cannot be reached; ``str()`` is the reason given to the extension, and
    ``data`` what else it is told (-32010's ``data``: ``fix``, ``cause``, ``port``)."""

    def __init__(self, reason: str, **data: Any) -> None:
        super().__init__(reason)
        self.data = data


class NotRunning(Unavailable):
    """Nothing listens where daemon.json says (or there is no daemon.json): worth starting."""


def read_endpoint(paths: Paths) -> str:
    """The daemon's WebSocket URL from daemon.json, when the daemon it names still runs.
    Raises NotRunning (no file, or a stale one: its port may be anyone's now) or
    Unavailable."""
    try:
        return str(daemonfile.read_running(paths)["url"])
    except daemonfile.NoDaemonFile as exc:
        raise NotRunning(str(exc)) from None
    except DaemonError as exc:
        raise Unavailable(str(exc)) from None


def read_token(paths: Paths) -> str:
    """The API token. Raises Unavailable with the reason when it cannot be read."""
    try:
        from freight.secrets import get_token
    except ImportError:
        get_token = None
    try:
        if get_token is not None:
            return str(get_token(paths))
        return (paths.secrets_dir / "api-token").read_text(encoding="utf-8").strip()
    except Exception as exc:  # any keyring or file failure is a reason to report, not a crash
        raise Unavailable(f"cannot read the daemon's token: {exc}") from None


def start_command() -> list[str]:
    """How to run `freight start` with the same Python (and so the same install)."""
    return [sys.executable, "-m", "freight", "start"]


@dataclass
class LinkOptions:
    start_daemon: bool = True
    start_timeout: float = START_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT


class DaemonLink:
    """Opens connections to the daemon of ``paths``, starting it if needed and allowed.
    Holds no connection itself: :class:`freight_host.relay.Relay` owns the one in use."""

    def __init__(self, paths: Paths, options: LinkOptions | None = None) -> None:
        self.paths = paths
        self.options = options or LinkOptions()

    def open(self) -> tuple[ClientConnection, str]:
        """One attempt to connect where daemon.json says. Raises NotRunning or Unavailable."""
        url = read_endpoint(self.paths)
        token = read_token(self.paths)
        try:
            ws = open_daemon_socket(url, token, timeout=self.options.connect_timeout,
                                    max_size=FROM_DAEMON_MAX, close_timeout=1)
        except DaemonUnreachable as exc:
            raise NotRunning(str(exc)) from None
        except DaemonError as exc:  # a refusal (401, ...) or an impostor: never started over
            raise Unavailable(str(exc)) from None
        return ws, url

    def start(self) -> None:
        """Run `freight start`; raises Unavailable with the reason when it fails: the daemon's
        own record of why it could not start (:mod:`freight.starterror`) and its fix, or,
        without one, the last line `freight start` printed."""
        cmd = start_command()
        log.info("starting the daemon: %s", cmd)
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        # Its output goes to our log, never to our stdout; it gets its own session so that the
        # browser killing the host's process group does not kill the daemon.
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.options.start_timeout,
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(
                f"`freight start` did not finish within {self.options.start_timeout:g} s",
                fix="freight doctor",
            ) from None
        except OSError as exc:
            raise Unavailable(f"cannot run `freight start`: {exc}", fix="freight install") \
                from None
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()
        if output:
            log.info("`freight start` said: %s", output)
        if proc.returncode != 0:
            log.warning("`freight start` failed with exit code %s", proc.returncode)
            recorded = starterror.read(self.paths)
            if recorded is not None:
                data = recorded.data()
                raise Unavailable(data.pop("reason"), **data)
            last = output.splitlines()[-1].removeprefix("freight: ") if output else \
                f"exit code {proc.returncode}"
            raise Unavailable(f"`freight start` failed: {last}", fix="freight doctor",
                              cause="failed")

    def connect(self, start: bool) -> tuple[ClientConnection, str]:
        """Connect; when nothing runs and ``start`` allows, start the daemon and connect."""
        try:
            return self.open()
        except NotRunning as exc:
            if not start:
                raise
            log.info("%s; starting it", exc)
        self.start()
        # `freight start` returned 0 once the daemon accepted connections; daemon.json may
        # still be landing: retry briefly.
        deadline = time.monotonic() + self.options.connect_timeout
        while True:
            try:
                return self.open()
            except NotRunning as exc:
                if time.monotonic() > deadline:
                    raise Unavailable(f"the daemon was started but does not answer: {exc}") \
                        from None
                time.sleep(0.1)
