"""A tiny asyncio TCP server for behaviours the fault server does not have.

Each test hands it a coroutine ``handler(reader, writer)`` that speaks raw bytes: a header
flood, a body that never ends, one byte per second, a redirect to ``ftp://``. The server runs
its own loop in a thread, binds 127.0.0.1 port 0, and ``stop()`` closes every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    """The request line and lower-cased headers of one request ("" at EOF)."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return "", {}
    line, *rest = raw.decode("latin-1").split("\r\n")
    headers = {}
    for item in rest:
        name, sep, value = item.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return line, headers


class RawServer:
    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.requests: list[str] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def start(self) -> RawServer:
        self.thread.start()

        async def boot() -> None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
            self.port = self.server.sockets[0].getsockname()[1]

        asyncio.run_coroutine_threadsafe(boot(), self.loop).result(5)
        return self

    def url(self, path: str = "/f") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self.server is not None
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
