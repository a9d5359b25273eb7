"""What runs after a download completes: the ``on_complete`` command and the ``webhook``.

Both follow the hub's ``download.state`` events to ``completed`` (on the daemon's loop) and
never hold it: the command runs as a child process awaited by a task of its own
(``asyncio.create_subprocess_exec``), the webhook's POST on a thread of a small pool. A
download's end is stored and announced before either starts, and nothing they do (a hang, a
crash, a refused connection) reaches a download: it is logged, that is all.

Rules they keep:

- The command is an argv list, run without a shell (a string is refused when it is set,
  by :func:`freight.daemon.hookrules.check_settings`), with nothing appended: the download
  is in its environment, ``FREIGHT_PATH``, ``FREIGHT_ID``, ``FREIGHT_URL`` and
  ``FREIGHT_STATE``, so that no file name, however odd, is ever parsed as an option or a
  word. It runs in the download's folder,
  in a session of its own (a signal to the daemon's group never reaches it), for at most
  ``on_complete_timeout`` seconds (300), then its process group is killed. Its exit status and the
  tail of its stderr are logged; at most :data:`MAX_COMMANDS` run at once, the others wait.
- The webhook is an http(s) URL, posted a JSON object of the same facts once, with a
  :data:`WEBHOOK_TIMEOUT`; a failure (no answer, a status >= 300, a redirect) is logged and
  never retried: a receiver that is down must not pile up work in the daemon.
- Nothing listens to the hub until a hook is set: a listener makes every event carry its row.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import urllib.request
from collections import deque
from typing import Any

from freight import __version__
from freight.daemon.events import Hub
from freight.store import Store

log = logging.getLogger("freight.daemon")

MAX_COMMANDS = 4  # at once: a burst of small files must not fork hundreds of processes
STDERR_TAIL = 2000  # bytes of the command's stderr kept for the log
WEBHOOK_TIMEOUT = 10.0  # seconds, for the connection and for the answer


class CompletionHooks:
    """Runs the hooks the settings hold for each completed download (on the loop)."""

    def __init__(self, store: Store, hub: Hub) -> None:
        self.store = store
        self.hub = hub
        self._listening = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._commands: asyncio.Semaphore | None = None
        self._posts: concurrent.futures.ThreadPoolExecutor | None = None

    def follow(self, settings: dict[str, Any]) -> None:
        """Start listening once a hook is set (at start and after each settings change)."""
        if not self._listening and (settings.get("on_complete") or settings.get("webhook")):
            self.hub.listen(self._on_event)
            self._listening = True

    def _on_event(self, event: str, params: dict[str, Any]) -> None:
        if event != "download.state" or params.get("state") != "completed":
            return
        settings = self.store.settings()
        argv, webhook = settings.get("on_complete") or [], settings.get("webhook") or ""
        if not argv and not webhook:
            return
        row = params.get("download") or self.store.get(params["id"]).public()
        facts = {"id": row["id"], "url": row["url"], "path": row["path"],
                 "state": row["state"], "name": row["name"], "size": row["size"]}
        if argv:
            timeout = float(settings.get("on_complete_timeout") or 300.0)
            self._spawn(self._run_command(list(argv), facts, row["dir"], timeout))
        if webhook:
            self._spawn(self._post(webhook, facts))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_command(
        self, argv: list[str], facts: dict[str, Any], folder: str, timeout: float
    ) -> None:
        if self._commands is None:
            self._commands = asyncio.Semaphore(MAX_COMMANDS)
        env = {**os.environ, "FREIGHT_PATH": facts["path"] or "", "FREIGHT_ID": str(facts["id"]),
               "FREIGHT_URL": facts["url"], "FREIGHT_STATE": facts["state"]}
        what = f"on_complete for download {facts['id']}"
        async with self._commands:
            try:
                child = await asyncio.create_subprocess_exec(
                    *argv, env=env, cwd=folder if os.path.isdir(folder) else None,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE, start_new_session=True)
            except OSError as exc:
                log.warning("%s did not start (%s): %s", what, argv[0],
                            exc.strerror or type(exc).__name__)
                return
            tail: deque[bytes] = deque()
            try:
                code = await asyncio.wait_for(_finish(child, tail), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):  # ended now
                    os.killpg(child.pid, signal.SIGKILL)
                await child.wait()
                log.warning("%s ran past %g s (on_complete_timeout) and was killed", what,
                            timeout)
                return
        said = b"".join(tail)[-STDERR_TAIL:].decode("utf-8", "replace").strip()
        if code == 0:
            log.info("%s exited with 0%s", what, f": {said}" if said else "")
        else:
            log.warning("%s exited with %s: %s", what, code, said or "(nothing on stderr)")

    async def _post(self, url: str, facts: dict[str, Any]) -> None:
        if self._posts is None:
            self._posts = concurrent.futures.ThreadPoolExecutor(2, "webhook")
        loop = asyncio.get_running_loop()
        try:
            status = await loop.run_in_executor(self._posts, _post_json, url, facts)
        except OSError as exc:  # urllib's errors, a refused connection, a timeout
            log.warning("webhook for download %s failed (not retried): %s", facts["id"], exc)
        else:
            log.info("webhook for download %s answered %s", facts["id"], status)


async def _finish(child: asyncio.subprocess.Process, tail: deque[bytes]) -> int:
    """Read the child's stderr to its end, keeping about its last STDERR_TAIL bytes in
    ``tail``, then wait for its exit status."""
    assert child.stderr is not None
    stream = child.stderr
    kept = 0
    while chunk := await stream.read(4096):
        tail.append(chunk)
        kept += len(chunk)
        while kept - len(tail[0]) >= STDERR_TAIL:
            kept -= len(tail.popleft())
    return await child.wait()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would become a GET without its body (RFC 9110 §15.4): a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post_json(url: str, facts: dict[str, Any]) -> int:
    """POST ``facts`` as JSON to ``url`` once; the status, or OSError (HTTPError for >= 300)."""
    body = json.dumps(facts).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"freight/{__version__}"})
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=WEBHOOK_TIMEOUT) as answer:
        return int(answer.status)
