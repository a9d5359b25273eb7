"""Native messaging framing, sans I/O: bytes in, messages out; messages in, bytes out.

Chrome and Firefox frame every message on the host's stdin and stdout as a 32-bit length in
the machine's native byte order followed by that many bytes of UTF-8 JSON
(https://developer.chrome.com/docs/extensions/develop/concepts/native-messaging#native-messaging-host-protocol).
The browser refuses a host → browser message over 1 MB and may send up to 64 MiB the other way.

This module never reads, writes, sleeps or starts a thread; :mod:`freight_host.host` pumps
bytes through it. Usage::

    decoder = FrameDecoder()
    for item in decoder.feed(chunk):       # after every read from stdin
        if isinstance(item, FramingError):
            ...                            # answer with an error; stop if item.fatal
        else:
            ...                            # a decoded JSON value
    error = decoder.eof()                  # when stdin is closed: None, or the truncated frame

Errors are values, not exceptions, so that one bad frame among good ones in the same read does
not hide the good ones. A frame whose bytes are not UTF-8, not JSON (NaN and Infinity
included) or nested more than :data:`MAX_DEPTH` levels deep is reported and skipped: its
length told us where the next frame starts. The depth is measured before parsing
(:func:`too_deep`), so a frame nested 100,000 deep is one more error, never a RecursionError.
A length over the limit is fatal: the stream is almost surely not framed at all (text written
to the pipe, a wrong byte order), and there is no marker to find the next frame by, so the
decoder refuses everything after it.
"""

from __future__ import annotations

import json
import re
import struct
from itertools import accumulate
from typing import Any

#: Native byte order, standard 4-byte size ("=" in struct), as the browsers write it.
_HEADER = struct.Struct("=I")
HEADER_SIZE = _HEADER.size

#: Chrome's limit for one browser → host message.
BROWSER_TO_HOST_MAX = 64 * 1024 * 1024
#: What the host accepts by default: far above any request the extension sends, far below the
#: memory a 64 MiB message would cost.
DEFAULT_MAX_INCOMING = 4 * 1024 * 1024
#: Chrome's limit for one host → browser message (1 MB, counted as 1024 * 1024 bytes).
HOST_TO_BROWSER_MAX = 1024 * 1024
#: The deepest nesting of arrays and objects a frame may have (RFC 8259 section 9 lets a parser
#: set one). The extension's requests nest 4 or 5 levels; 64 is far above that and far below
#: the depth at which json.loads raises RecursionError (about 1,000), so a frame is measured
#: before it is parsed and decoding never recurses more than 64 levels.
MAX_DEPTH = 64

#: A JSON string, or an unclosed one up to the end (which keeps the scan linear): brackets
#: inside one are not nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: +1 for an opening bracket, -1 for a closing one, by byte value.
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


class FramingError(Exception):
    """One frame (or the stream) could not be decoded. ``fatal``: the stream cannot go on."""

    def __init__(self, message: str, *, kind: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        #: ``too_large``, ``invalid_utf8``, ``invalid_json``, ``too_deep``, ``truncated`` or
        #: ``broken``.
        self.kind = kind
        self.fatal = fatal

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"FramingError({self.message!r}, kind={self.kind!r}, fatal={self.fatal})"


class MessageTooLarge(FramingError):
    """Raised by :func:`encode` when a message would exceed the browser's limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"message of {size} bytes is over the {limit}-byte native messaging limit",
            kind="too_large",
        )
        self.size = size
        self.limit = limit


class FrameDecoder:
    """Turns the bytes read from the browser into JSON values and :class:`FramingError` s."""

    def __init__(self, max_size: int = DEFAULT_MAX_INCOMING, max_depth: int = MAX_DEPTH) -> None:
        if not 0 < max_size <= BROWSER_TO_HOST_MAX:
            raise ValueError(f"max_size must be in 1..{BROWSER_TO_HOST_MAX}, not {max_size}")
        if not 0 < max_depth <= MAX_DEPTH:
            raise ValueError(f"max_depth must be in 1..{MAX_DEPTH}, not {max_depth}")
        self.max_size = max_size
        self.max_depth = max_depth
        self._buffer = bytearray()
        self._broken = False

    @property
    def broken(self) -> bool:
        """True after a fatal error: nothing more will be decoded; the caller should stop."""
        return self._broken

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return every message (or FramingError) they complete, in order.

        After a fatal error the decoder is broken: it keeps returning ``[]``.
        """
        if self._broken:
            return []
        self._buffer += data
        out: list[Any] = []
        while len(self._buffer) >= HEADER_SIZE:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self.max_size:
                self._broken = True
                self._buffer.clear()
                out.append(
                    FramingError(
                        f"frame length {length} is over the limit of {self.max_size} bytes;"
                        " the stream cannot be resynchronised",
                        kind="too_large",
                        fatal=True,
                    )
                )
                return out
            end = HEADER_SIZE + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[HEADER_SIZE:end])
            del self._buffer[:end]
            out.append(_decode_payload(payload, self.max_depth))
        return out

    def eof(self) -> FramingError | None:
        """The input is closed. Return an error when a frame was cut short, else None."""
        if self._broken or not self._buffer:
            return None
        have = len(self._buffer)
        self._buffer.clear()
        self._broken = True
        return FramingError(
            f"input closed in the middle of a frame ({have} bytes pending)",
            kind="truncated",
            fatal=True,
        )


def _decode_payload(payload: bytes, max_depth: int) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return FramingError(f"frame is not valid UTF-8: {exc.reason} at byte {exc.start}",
                            kind="invalid_utf8")
    if too_deep(payload, max_depth):
        return FramingError(f"frame nests arrays and objects more than {max_depth} levels deep",
                            kind="too_deep")
    try:
        # Browsers send strict JSON; NaN and Infinity are not JSON (RFC 8259 section 6).
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: cannot happen after too_deep
        return FramingError(f"frame is not valid JSON: {exc}", kind="invalid_json")


def too_deep(payload: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects in UTF-8 JSON nest more than ``limit`` levels.

    Measured without parsing (no recursion), in linear time: strings are cut out, then the
    running count of brackets is taken. Exact for valid JSON; for invalid JSON never below the
    depth a parser reaches before it fails, which is all the limit needs.
    """
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", payload).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def frame(payload: bytes, limit: int = HOST_TO_BROWSER_MAX) -> bytes:
    """Prefix UTF-8 JSON bytes with their length. Raises MessageTooLarge over ``limit``."""
    if len(payload) > limit:
        raise MessageTooLarge(len(payload), limit)
    return _HEADER.pack(len(payload)) + payload


def dumps(message: Any) -> bytes:
    """Compact UTF-8 JSON for a message; raises ValueError for NaN/Infinity or cycles."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (legal in a JSON string escape, not in UTF-8): keep it escaped.
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")


def encode(message: Any, limit: int = HOST_TO_BROWSER_MAX) -> bytes:
    """One framed message, ready to write to stdout. Raises MessageTooLarge over ``limit``."""
    return frame(dumps(message), limit)
