"""The WebSocket layer: refuse before the upgrade, then pump frames to the protocol and back.

Checks, in this order, on the HTTP upgrade request (docs/PROTOCOL.md, docs/SECURITY.md):

1. ``Host`` must be ``127.0.0.1:PORT`` or ``localhost:PORT``, else **421**. A web page that
   rebinds its own DNS name to 127.0.0.1 sends its own name here (RFC 9110 §7.2, §15.5.20).
2. ``Origin``, when present, must be an extension origin on the allow-list, else **403**.
   Browsers always send Origin on a page's WebSocket (RFC 6455 §4.1 item 8, §10.2), so no web
   page gets through; native clients (the host, the CLI) send none.
3. ``GET /challenge`` (step 1 of the handshake, :mod:`freight.handshake`) is answered here,
   with 200 and the daemon's proof, or 400 for a malformed nonce or key id.
4. The upgrade's ``Authorization: Freight nonce=..., challenge=..., proof=...`` must name a
   daemon nonce issued to that client nonce, unused and not expired, and prove the token,
   else **401**. A bearer token is refused: it is what a stale daemon.json gave away.

Headers that may repeat are read with ``get_all``: ``get`` raises on duplicates, which would
turn an attack into a 500. Frames over 1 MiB close the connection with 1009 (RFC 6455 §7.4.1).

After the upgrade each connection has a reader (requests, in order, one at a time) and a
writer that drains the client's :class:`~freight.daemon.events.Outbox`, so that a slow reader
only ever fills its own outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from freight import handshake
from freight.daemon import protocol as api
from freight.daemon.events import Hub, Session
from freight.errors import ShuttingDown

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CLOSE_TOO_SLOW = 1008  # policy violation: the client let its outbox overflow

#: Methods still answered while the daemon stops; everything else gets -32003.
_WHILE_STOPPING = frozenset({"version", "status", "get", "states", "list", "get_settings"})


class Handler:
    """What the server calls: ``await handler.call(session, call)`` → a JSON-able result."""

    async def call(self, session: Session, call: api.Call) -> Any:  # pragma: no cover
        raise NotImplementedError


class ApiServer:
    def __init__(
        self,
        handler: Handler,
        hub: Hub,
        *,
        token: Callable[[], str],
        reload_token: Callable[[], Awaitable[str]] | None = None,
        origins: Callable[[], set[str]],
        port: int = 0,
    ) -> None:
        self.handler = handler
        self.hub = hub
        self._token = token
        self._reload_token = reload_token
        self._origins = origins
        self._port = port
        self.port = 0  # the bound port, once started
        self.stopping = False
        self._server: Server | None = None
        self._last_reload = 0.0
        self._nonces = handshake.NonceStore()

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/"

    async def start(self) -> None:
        self._server = await serve(
            self._connection,
            HOST,
            self._port,
            process_request=self._check_request,
            max_size=api.MAX_MESSAGE,
            compression=None,  # no permessage-deflate: nothing to gain on loopback
            server_header=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    def stop_accepting(self) -> None:
        """Stage one of a shutdown: no new connections; open ones keep working."""
        self.stopping = True
        if self._server is not None:
            self._server.close(close_connections=False)

    async def close(self, timeout: float = 2.0) -> None:
        """Close every connection (1001 going away) and wait for them briefly."""
        self.stopping = True
        if self._server is None:
            return
        for session in list(self.hub.sessions):
            session.outbox.close()
        self._server.close(close_connections=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout)

    # -- before the upgrade ----------------------------------------------------------------

    def allowed_hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    async def _check_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path.split("?")[0]
        reason = self.refusal(request.headers)
        if reason is None and path == handshake.CHALLENGE_PATH:
            return await self._challenge(connection, request.headers)
        if reason is None:
            reason = await self._authenticate(path, request.headers)
        if reason is None:
            return None
        status, text = reason
        log.warning(
            "refused a connection from %s: %d %s", connection.remote_address, status, text
        )
        return connection.respond(status, text + "\n")

    async def _challenge(self, connection: ServerConnection, headers: Headers) -> Response:
        """Step 1 of the handshake: prove the token to a client that sent a fresh nonce."""
        nonces, keys = headers.get_all(handshake.NONCE_HEADER), headers.get_all(
            handshake.KEY_HEADER)
        try:
            if len(nonces) != 1 or len(keys) != 1:
                raise handshake.HandshakeError(
                    f"send one {handshake.NONCE_HEADER} and one {handshake.KEY_HEADER} header")
            handshake.nonce_bytes(nonces[0])
            if not handshake.is_key_id(keys[0]):
                raise handshake.HandshakeError(
                    f"{handshake.KEY_HEADER} must be {handshake.KEY_ID_CHARS} lowercase hex")
        except handshake.HandshakeError as exc:
            log.warning("refused a challenge from %s: %s", connection.remote_address, exc)
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{exc}\n")
        if keys[0] != handshake.key_id(self._token()) and self._token_stale():
            # The client may hold a token rotated by another process (`freight token
            # --rotate`): read it again, at most once a second so that guessing cannot
            # hammer the keyring.
            assert self._reload_token is not None
            await self._reload_token()
        answer = handshake.challenge_answer(self._token(), nonces[0], self._nonces, self.port)
        response = connection.respond(HTTPStatus.OK, json.dumps(answer))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _authenticate(self, path: str, headers: Headers) -> tuple[HTTPStatus, str] | None:
        """Step 2: the upgrade's proof for one of our nonces, then the path."""
        auth = headers.get_all("Authorization")
        try:
            if len(auth) != 1:
                raise handshake.HandshakeError("send one Authorization header")
            given = handshake.parse_authorization(auth[0])
        except handshake.HandshakeError as exc:
            return HTTPStatus.UNAUTHORIZED, f"{exc}"
        # Spent whatever the outcome: one nonce, one try.
        if not self._nonces.redeem(given.challenge, given.nonce):
            return HTTPStatus.UNAUTHORIZED, "unknown, used or expired challenge: ask another"
        if not handshake.verify_client_proof(self._token(), given.nonce, given.challenge,
                                             self.port, given.proof):
            if not self._token_stale():
                return HTTPStatus.UNAUTHORIZED, "wrong proof"
            assert self._reload_token is not None
            await self._reload_token()
            if not handshake.verify_client_proof(self._token(), given.nonce, given.challenge,
                                                 self.port, given.proof):
                return HTTPStatus.UNAUTHORIZED, "wrong proof"
        if path != "/":
            return HTTPStatus.NOT_FOUND, "the Freight API is at /"
        return None

    def _token_stale(self) -> bool:
        if self._reload_token is None:
            return False
        now = asyncio.get_running_loop().time()
        if now - self._last_reload < 1.0:
            return False
        self._last_reload = now
        return True

    def refusal(self, headers: Headers) -> tuple[HTTPStatus, str] | None:
        """Why a request is refused before any credential is looked at, or None."""
        hosts = headers.get_all("Host")
        if len(hosts) != 1 or hosts[0].lower() not in self.allowed_hosts():
            return HTTPStatus.MISDIRECTED_REQUEST, "Host must be 127.0.0.1 or localhost:PORT"
        origins = headers.get_all("Origin")
        if origins:
            allowed = {o.rstrip("/") for o in self._origins()}
            if len(origins) != 1 or origins[0].rstrip("/") not in allowed:
                return HTTPStatus.FORBIDDEN, "this Origin may not use the Freight API"
        return None

    # -- after the upgrade -----------------------------------------------------------------

    async def _connection(self, ws: ServerConnection) -> None:
        session = Session(name=f"{ws.remote_address}")
        session.browser = ws.request is not None and "Origin" in ws.request.headers
        self.hub.attach(session)
        writer = asyncio.create_task(self._writer(ws, session))
        try:
            async for message in ws:
                reply = await self._one(session, message)
                if reply is not None:
                    session.send(reply.encode())
                if session.outbox.closed:
                    break
        except ConnectionClosed:
            pass
        finally:
            self.hub.detach(session)
            # Let the writer flush what is queued (the reply to `shutdown`, for one).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2.0)
            writer.cancel()

    async def _one(self, session: Session, message: str | bytes) -> api.Reply | None:
        parsed = api.parse(message)
        if isinstance(parsed, api.Reply):
            return parsed
        call = parsed
        if self.stopping and call.method not in _WHILE_STOPPING:
            reply = api.failure(call, ShuttingDown("the daemon is stopping"))
        else:
            try:
                reply = api.result(call, await self.handler.call(session, call))
                reply.encode()  # a result that is not JSON is a bug: report it as one
            except Exception as exc:
                reply = api.failure(call, exc)
        return reply if call.wants_reply else None

    async def _writer(self, ws: ServerConnection, session: Session) -> None:
        try:
            while True:
                texts = await session.outbox.get_all()
                if texts is None:
                    break
                await send_together(ws, texts)
        except ConnectionClosed:
            return
        if session.outbox.overflowed:
            log.warning("closing %s: it does not read its messages", session.name)
            await ws.close(CLOSE_TOO_SLOW, "client too slow")


async def send_together(ws: ServerConnection, texts: list[str]) -> None:
    """Send each of ``texts`` as its own text message, in order, in one write to the socket.

    ``ws.send`` writes each message's frame at once: one ``sendto`` a message, and the events
    of one loop turn (a batch of completed downloads, an ``add_many``'s) come many at once.
    The frames are the same bytes either way (RFC 6455 §5: a message is its own frames, and
    nothing binds a frame to a segment), so the client reads the very same messages. Through
    websockets' Sans-I/O protocol (``send_text`` then ``data_to_send``, its documented
    pair) inside the connection's own ``send_context``, which checks that the connection is
    open and applies its flow control; one message, or a connection without that protocol
    object, goes through ``ws.send``.
    """
    protocol, transport = getattr(ws, "protocol", None), getattr(ws, "transport", None)
    if len(texts) == 1 or protocol is None or transport is None:
        for text in texts:
            await ws.send(text)
        return
    async with ws.send_context():
        for text in texts:
            protocol.send_text(text.encode())
        # Only these frames are queued: the library writes out what each of its own steps
        # queues at once, and nothing else ran since send_context found the connection open.
        transport.writelines(protocol.data_to_send())
