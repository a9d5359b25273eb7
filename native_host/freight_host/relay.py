"""The relay between the extension and the daemon: every JSON-RPC message from the extension
goes unchanged to the daemon's WebSocket (docs/PROTOCOL.md), and every response and
notification from the daemon comes back unchanged, except:

- ``host.*`` methods are answered here (``host.hello``);
- when the daemon cannot be reached or started, requests are answered with error -32010
  ``daemon_unavailable`` and ``data.reason``, so that the extension gives the download back
  to the browser;
- a daemon message too large for the browser (1 MB) becomes an error for that request.

Threads: the main thread reads stdin and sends to the daemon; one thread per daemon connection
reads from it and writes frames. Frames are written under one lock (:class:`FrameWriter`);
the connection, the requests in flight and the subscription are guarded by ``Relay._lock``.
Connecting and starting the daemon: :mod:`freight_host.link`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from freight.config import Paths
from freight.rpc import (
    DAEMON_UNAVAILABLE,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PROTOCOL_VERSION,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from freight_host import __version__
from freight_host.framing import HOST_TO_BROWSER_MAX, MessageTooLarge, dumps, frame
from freight_host.link import DaemonLink, LinkOptions, Unavailable

log = logging.getLogger("freight_host")


#: The daemon closes a connection on a message over 1 MiB (code 1009); refuse such a request
#: here instead, so one oversized request does not cost every request in flight.
DAEMON_MAX_MESSAGE = 1024 * 1024
#: Ids of requests the host makes itself; their responses are never forwarded.
_OWN_ID_PREFIX = "freight-host:"
#: After a failed start, answer from this memory for a while instead of starting again for
#: every request of a burst.
FAILURE_MEMORY = 3.0


# -- small helpers -------------------------------------------------------------------------


def response_error(
    id_: Any, code: int, kind: str, message: str, **data: Any
) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "error": {"code": code, "message": message, "data": {"kind": kind, **data}},
    }


def unavailable_error(id_: Any, exc: Unavailable, **extra: Any) -> dict[str, Any]:
    """-32010 with the reason and, when known, the fix (``data.fix``), what failed
    (``data.cause``: the daemon's start-error kind) and the port (docs/PROTOCOL.md)."""
    return response_error(id_, DAEMON_UNAVAILABLE, "daemon_unavailable",
                          f"Freight's daemon is unavailable: {exc}",
                          **{"fix": "freight start", **exc.data, "reason": str(exc), **extra})


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def not_a_request(message: Any) -> dict[str, Any] | None:
    """The -32600 answer for a decoded message that is not a JSON-RPC 2.0 request, else None.

    The same envelope rules as the daemon's ``protocol.parse``: an object with ``jsonrpc``
    "2.0", a string ``method`` and, if present, an ``id`` that is a string (≤ 256) or an
    integer (|id| < 2**53). Answered even without an id (JSON-RPC 2.0 section 5: id null when
    it cannot be read), and never sent to the daemon.
    """
    if not isinstance(message, dict):
        what = "batches are not supported" if isinstance(message, list) else \
            "a message must be a JSON-RPC request object"
        return response_error(None, INVALID_REQUEST, "invalid_request", what)
    id_ = message.get("id")
    valid_id = ("id" not in message or isinstance(id_, str) and len(id_) <= 256
                or type(id_) is int and abs(id_) < 2**53)
    reply_id = id_ if valid_id else None
    if message.get("jsonrpc") != "2.0":
        what = "'jsonrpc' must be \"2.0\""
    elif not valid_id:
        what = "'id' must be a string or an integer"
    elif not isinstance(message.get("method"), str):
        what = "'method' must be a string"
    else:
        return None
    return response_error(reply_id, INVALID_REQUEST, "invalid_request", what)


def _key(id_: Any) -> str:
    """A hashable key for any JSON id (ints and strings may both appear)."""
    return json.dumps(id_, sort_keys=True)


# -- output --------------------------------------------------------------------------------


class FrameWriter:
    """Writes frames to the browser. Thread-safe; turns a closed pipe into ``closed``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        self.send_payload(dumps(message))

    def send_payload(self, payload: bytes) -> None:
        data = frame(payload)  # raises MessageTooLarge; callers decide what to send instead
        with self._lock:
            if self.closed:
                return
            try:
                view = memoryview(data)
                while view:
                    written = os.write(self.fd, view)
                    view = view[written:]
            except OSError as exc:  # the browser went away (EPIPE)
                log.info("stdout closed: %s", exc)
                self.closed = True


# -- the relay -----------------------------------------------------------------------------


class Relay:
    """Owns the daemon connection and the bookkeeping of requests in flight."""

    def __init__(self, paths: Paths, out: FrameWriter, options: LinkOptions | None = None):
        self.paths = paths
        self.out = out
        self.link = DaemonLink(paths, options)
        self._lock = threading.Lock()  # guards _ws, _url, _pending, _subscribe
        self._connect_lock = threading.Lock()  # one connect/start attempt at a time
        self._ws: ClientConnection | None = None
        self._url: str | None = None
        self._pending: dict[str, Any] = {}  # key → the extension's id
        self._subscribe: dict[str, Any] | None = None  # params of the extension's subscribe
        self._failure: tuple[float, Unavailable] | None = None
        self._closing = False
        self._own_ids = 0
        self._reconnecting = False

    # .. connecting ..

    def ensure(self, start: bool = True) -> str:
        """Connect (starting the daemon if allowed and needed); return the daemon's URL.

        Raises Unavailable with the reason to give the extension.
        """
        with self._connect_lock:
            with self._lock:
                if self._ws is not None and self._url is not None:
                    return self._url
            now = time.monotonic()
            remembered = None
            if self._failure and now - self._failure[0] < FAILURE_MEMORY and start:
                # A burst of requests starts the daemon once; but one that the user started
                # meanwhile (the fix they were given) is connected to at once.
                remembered = self._failure[1]
            try:
                ws, url = self.link.connect(start and remembered is None
                                            and self.link.options.start_daemon)
            except Unavailable as exc:
                if remembered is not None:
                    raise remembered from None
                if start:
                    self._failure = (time.monotonic(), exc)
                    log.warning("daemon unavailable: %s", exc)
                else:  # the reconnect loop polls: once per attempt would flood the log
                    log.debug("daemon unavailable: %s", exc)
                raise
            self._failure = None
            with self._lock:
                self._ws, self._url = ws, url
                resubscribe = self._subscribe
            log.info("connected to the daemon at %s", url)
            threading.Thread(target=self._pump, args=(ws,), name="daemon-reader",
                             daemon=True).start()
            if resubscribe is not None:
                self._send_own("subscribe", resubscribe)
            return url

    def _send_own(self, method: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._own_ids += 1
            ws = self._ws
            message = {"jsonrpc": "2.0", "id": f"{_OWN_ID_PREFIX}{self._own_ids}",
                       "method": method, "params": params}
        if ws is not None:
            try:
                ws.send(json.dumps(message))
            except ConnectionClosed:
                pass  # the reader notices and reconnects

    # .. daemon → browser ..

    def _pump(self, ws: ClientConnection) -> None:
        try:
            for text in ws:
                self._from_daemon(text)
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must not kill the host silently
            log.exception("reading from the daemon failed")
        finally:
            self._closed(ws)

    def _from_daemon(self, text: str | bytes) -> None:
        payload = text.encode("utf-8") if isinstance(text, str) else text
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("the daemon sent something that is not JSON; dropped")
            return
        is_response = isinstance(message, dict) and "id" in message and "method" not in message
        if is_response:
            id_ = message["id"]
            if isinstance(id_, str) and id_.startswith(_OWN_ID_PREFIX):
                if "error" in message:
                    log.warning("host request %s failed: %s", id_, message["error"])
                return
            with self._lock:
                self._pending.pop(_key(id_), None)
        try:
            self.out.send_payload(payload)
        except MessageTooLarge as exc:
            if is_response:
                self.out.send(response_error(
                    message["id"], INVALID_PARAMS, "invalid_input",
                    f"the answer is too large for the browser ({exc.size} bytes, limit"
                    f" {HOST_TO_BROWSER_MAX}); ask for less (e.g. a smaller `limit`)",
                    reason="response_too_large",
                ))
            else:
                log.warning("dropped a %d-byte notification: too large for the browser", exc.size)

    def _closed(self, ws: ClientConnection) -> None:
        with self._lock:
            if self._ws is not ws:
                return
            self._ws = None
            orphans = list(self._pending.values())
            self._pending.clear()
            closing = self._closing
            subscribed = self._subscribe is not None
        if closing:
            return
        log.warning("the daemon connection closed (%s requests unanswered)", len(orphans))
        for id_ in orphans:
            self.out.send(response_error(
                id_, DAEMON_UNAVAILABLE, "daemon_unavailable",
                "the daemon closed the connection before answering",
                reason="the daemon closed the connection before answering",
            ))
        self.out.send(notification("host.daemon", {"connected": False}))
        if subscribed:
            self._start_reconnecting()

    def _start_reconnecting(self) -> None:
        with self._lock:
            if self._reconnecting:
                return
            self._reconnecting = True
        threading.Thread(target=self._reconnect_loop, name="daemon-reconnect",
                         daemon=True).start()

    def _reconnect_loop(self) -> None:
        """Wait for the daemon to come back (a restart), then resubscribe (in ensure)."""
        delay = 0.1
        try:
            while not self._closing and not self.out.closed:
                try:
                    url = self.ensure(start=False)
                except Unavailable:
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                self.out.send(notification("host.daemon", {"connected": True, "url": url}))
                return
        finally:
            with self._lock:
                self._reconnecting = False

    # .. browser → daemon ..

    def handle(self, message: Any) -> None:
        """One decoded message from the extension."""
        refusal = not_a_request(message)
        if refusal is not None:
            self.out.send(refusal)
            return
        has_id = "id" in message
        id_ = message.get("id")
        method = message.get("method")
        if isinstance(method, str) and method.startswith("host."):
            self._host_method(method, message.get("params"), has_id, id_)
            return
        try:
            text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(message, separators=(",", ":"))
        if len(text.encode("utf-8", "surrogatepass")) > DAEMON_MAX_MESSAGE:
            if has_id:
                self.out.send(response_error(
                    id_, INVALID_PARAMS, "invalid_input",
                    f"request over the daemon's {DAEMON_MAX_MESSAGE}-byte limit",
                    reason="request_too_large"))
            return
        for attempt in (1, 2):
            try:
                self.ensure()
            except Unavailable as exc:
                if has_id:
                    self.out.send(unavailable_error(id_, exc))
                return
            with self._lock:
                ws = self._ws
                if has_id and method is not None:
                    self._pending[_key(id_)] = id_
                if method == "subscribe":
                    params = message.get("params")
                    self._subscribe = params if isinstance(params, dict) else {}
            if ws is None:
                continue
            try:
                ws.send(text)
                return
            except ConnectionClosed:
                with self._lock:
                    mine = self._pending.pop(_key(id_), None) is not None or not has_id
                    if self._ws is ws:
                        self._ws = None
                if not mine:
                    return  # the reader already answered it with daemon_unavailable
                log.info("daemon connection lost while sending (attempt %d)", attempt)
        if has_id:
            self.out.send(response_error(
                id_, DAEMON_UNAVAILABLE, "daemon_unavailable",
                "the daemon connection keeps closing", reason="connection lost"))

    def _host_method(self, method: str, params: Any, has_id: bool, id_: Any) -> None:
        if method != "host.hello":
            if has_id:
                self.out.send(response_error(id_, METHOD_NOT_FOUND, "method_not_found",
                                             f"no such method: {method}"))
            return
        start = True
        if isinstance(params, dict) and params.get("start") is False:
            start = False  # `freight doctor` checks the host without starting the daemon
        try:
            url = self.ensure(start=start)
        except Unavailable as exc:
            if has_id:
                self.out.send(unavailable_error(id_, exc, host=__version__))
            return
        if has_id:
            self.out.send({"jsonrpc": "2.0", "id": id_, "result": {
                "host": __version__, "daemon": url, "protocol": PROTOCOL_VERSION}})

    def close(self) -> None:
        with self._lock:
            self._closing = True
            ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()
