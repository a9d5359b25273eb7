"""An open answer to one range request, whichever reader made it (lean, httpx or a script).

A Reply is made only by :func:`freight.engine.http.validate.validate`, so its fields always
describe a checked answer: ``start``/``end`` are the file offsets its body covers, ``ranged``
says it is a 206 for the range asked (RFC 9110 §14.4), and ``short`` that it is a 206 that
starts where asked but ends before the end asked (a server capping its bodies): ``end`` is
then where it stops, and the rest must be asked for with a new request — a reader of it
meets the end of its body before the end of its range, which every caller treats as a
connection that ended early.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from freight.engine.http.decoding import DEFAULT_MAX_EXPANSION, decoded

if TYPE_CHECKING:
    from freight.engine.http.lean import Connection

#: A body reader: read_size → chunks (a chunk may be reused once the next is asked for).
Body = Callable[[int], Iterator["bytes | memoryview"]]


@dataclass(eq=False)  # hashed by identity: a source keeps a set of open replies
class Reply:
    """An open response to a range request; ``close()`` it when done."""

    response: Any  # httpx.Response, or head.Head when the lean reader made the request
    url: str  # after redirects
    status: int
    start: int  # offset of the body's first byte in the file
    end: int | None  # exclusive end of the body's bytes, None when unknown
    size: int | None  # the whole file's size, None when unknown
    ranged: bool  # a 206: the server honours ranges
    validators: Any  # validate.Validators
    encoded: bool  # a Content-Encoding other than identity: bytes are not the file's
    conn: Connection | None = None  # set when the lean reader made the request
    early: memoryview | None = None  # body bytes that came with the head (lean reader)
    body: Body | None = None  # set by a reader that is neither lean nor httpx (a script)
    on_close: Callable[[Reply], None] | None = None  # the source's bookkeeping
    short: bool = False  # a 206 ending before the end asked (``end`` is where it stops)

    def chunks(
        self, read_size: int, *, max_expansion: float = DEFAULT_MAX_EXPANSION
    ) -> Iterator[bytes | memoryview]:
        """The body in chunks; a chunk may be reused after the next one is asked for. A
        coded body comes decoded, in chunks of at most ``read_size``, stopped once it
        expands past ``max_expansion`` (decoding.decoded)."""
        if self.conn is not None:
            assert self.end is not None
            keep_alive = self.response.headers.get("connection", "").lower() != "close"
            return self.conn.body(self.early or memoryview(b""), self.end - self.start, keep_alive)
        if self.body is not None:
            return self.body(read_size)
        from freight.engine.http.httpx_reader import mapped

        raw = mapped(self.response.iter_raw(read_size))
        if self.encoded:
            # Decoded here, not by httpx: its decoders inflate a whole chunk at once, without
            # bound (a 64 KiB chunk of a gzip bomb is 64 MiB at once).
            return decoded(raw, self.response.headers.get("content-encoding"),
                           piece=read_size, max_expansion=max_expansion)
        return raw

    def abort(self) -> None:
        """From another thread: wake the reader blocked on this reply's socket."""
        if self.conn is not None:
            self.conn.abort()
            return
        extensions = getattr(self.response, "extensions", None) or {}
        stream = extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def content_disposition(self) -> str | None:
        return self.response.headers.get("content-disposition")

    @property
    def content_type(self) -> str | None:
        return self.response.headers.get("content-type")

    def close(self) -> None:
        if self.conn is None:
            self.response.close()
        if self.on_close is not None:
            self.on_close(self)
