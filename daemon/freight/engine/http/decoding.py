"""A content-coded body (RFC 9110 §8.4) decoded as a browser saves it, within bounds.

Freight asks for ``Accept-Encoding: identity`` on every request (request.RangeRequest.
wire_headers); a server that codes its body anyway is decoded here, as one stream (a coded
range is never spliced: validate._partial). The rules:

- gzip and x-gzip (RFC 1952, several members in a row too), deflate (the zlib format of
  §8.4.1.2, or raw deflate as some servers send) are decoded, a list of codings in reverse
  order of their application (§8.4); identity is no coding.
- A coding browsers decode but Freight cannot here (br, zstd, compress) is a clear
  ProtocolViolation, never a file of coded bytes under the file's name. A token nobody
  defines (``Content-Encoding: utf-8`` from a misconfigured server) leaves the body as it
  came, as Chromium does.
- Decompression bombs: every zlib call yields at most ``piece`` bytes (its ``max_length``),
  so memory holds a piece per coding whatever the ratio; and past :data:`DECODED_FLOOR` the
  decoded bytes may not exceed ``max_expansion`` times the coded bytes consumed so far
  (the setting, default :data:`DEFAULT_MAX_EXPANSION`; 0: no bound). 1 MiB of gzip that
  expands to 1 GiB stops at 64 MiB with an error that names the setting.
- A coded stream that ends before its end (a connection closed inside it) is a
  TransientError, retried as the single stream is; corrupt data is a ProtocolViolation.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from freight.errors import ProtocolViolation, TransientError

#: Decoded bytes below this size are never refused for their ratio: any small file may be
#: all zeros or one repeated line.
DECODED_FLOOR = 64 << 20
#: Past the floor, decoded bytes per coded byte. Text and logs compress 5-20x, sparse disk
#: images more: a user who expects one raises the setting ``max_expansion``.
DEFAULT_MAX_EXPANSION = 100
#: Codings stacked on one body: each holds a zlib state; real servers apply one.
MAX_CODINGS = 4
_GZIP = ("gzip", "x-gzip")
_DECODED = (*_GZIP, "deflate")
#: Codings a browser may decode that Freight does not: refused rather than saved coded.
_UNDECODED = ("br", "zstd", "compress", "x-compress")


def codings(header: str | None) -> list[str] | None:
    """The codings of a Content-Encoding value, in the order applied, identity left out;
    None when one of them is a token no coding is registered for (left as it came)."""
    names = [token.strip().lower() for token in (header or "").split(",")]
    names = [name for name in names if name and name != "identity"]
    if any(name not in _DECODED and name not in _UNDECODED for name in names):
        return None
    return names


class _Meter:
    """Coded bytes the first decoder consumed so far."""

    consumed = 0


def decoded(
    chunks: Iterable[bytes | memoryview],
    content_encoding: str | None,
    *,
    piece: int,
    max_expansion: float = DEFAULT_MAX_EXPANSION,
) -> Iterator[bytes | memoryview]:
    """The body of ``chunks`` decoded from ``content_encoding``, in pieces of at most
    ``piece`` bytes; raises ProtocolViolation for a bomb, a corrupt body or a coding it
    cannot decode (see the module's docstring)."""
    names = codings(content_encoding)
    if names is None or not names:
        yield from chunks
        return
    if len(names) > MAX_CODINGS:
        raise ProtocolViolation(f"the server coded the body {len(names)} times over")
    refused = [name for name in names if name in _UNDECODED]
    if refused:
        raise ProtocolViolation(
            f"the server sent the body coded as {', '.join(refused)}, which Freight cannot "
            "decode (it asked for identity)"
        )
    meter = _Meter()
    stream: Iterator[bytes | memoryview] = iter(chunks)
    for depth, name in enumerate(reversed(names)):
        stream = _inflate(stream, name, piece, meter if depth == 0 else None)
    shown = ", ".join(names)[:40]
    total = 0
    for out in stream:
        total += len(out)
        if total > DECODED_FLOOR and max_expansion and total > max_expansion * meter.consumed:
            raise ProtocolViolation(
                f"the server's {shown} body expanded to {total} bytes from "
                f"{meter.consumed} coded bytes (more than {max_expansion:g}x, past "
                f"{DECODED_FLOOR >> 20} MiB): stopped as a decompression bomb; if the file "
                "is expected to expand this much, raise the setting max_expansion (0: no bound)"
            )
        yield out


def _decompressor(name: str, first: bytes) -> zlib._Decompress:
    if name in _GZIP:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # deflate: the zlib format (RFC 1950 §2.2: CM 8, the header a multiple of 31), else raw.
    zlib_format = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if zlib_format else -zlib.MAX_WBITS)


def _inflate(
    chunks: Iterator[bytes | memoryview], name: str, piece: int, meter: _Meter | None
) -> Iterator[bytes]:
    """One coding undone, ``piece`` bytes at most per step."""
    engine: zlib._Decompress | None = None
    ended = False  # the last stream (gzip member) reached its end
    pending = False  # zlib may hold output past ``piece`` with all its input taken
    for chunk in chunks:
        data = bytes(chunk)
        while data or pending:
            if ended:
                if name not in _GZIP or not data.strip(b"\0"):
                    break  # after a deflate stream, or a gzip's zero padding: not the file's
                engine = None  # RFC 1952 §2.2: another gzip member follows
            if engine is None:
                engine, ended = _decompressor(name, data), False
            try:
                out = engine.decompress(data, piece)
            except zlib.error as exc:
                raise ProtocolViolation(f"the server's {name} body is corrupt ({exc})") from None
            ended = engine.eof
            rest = engine.unused_data if ended else engine.unconsumed_tail
            if meter is not None:
                meter.consumed += len(data) - len(rest)
            data, pending = rest, not ended and len(out) == piece
            if out:
                yield out
    if engine is not None and not ended:
        raise TransientError(f"the connection ended inside the {name} body")
