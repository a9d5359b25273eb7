"""Content codings on the wire (RFC 9110 §8.4), through both readers and a real Transfer.

Every request of a download asks for ``Accept-Encoding: identity`` — the probe, each range
and the single stream, on the lean path and the httpx one — whatever Accept-Encoding the
user's headers carry: a range applies to the representation selected, content coding
included (§14.1.1), so only identity ranges can be spliced into the file. A server that codes
its answer anyway is decoded as one stream, never split, within a bound on how much the
decoded bytes may outgrow the coded ones (engine/http/decoding.py).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, make_data
from freight.config import EngineSettings
from freight.engine.http.decoding import DECODED_FLOOR, decoded
from freight.errors import ProtocolViolation, TransientError
from freight.models import Download
from freight.store import Store

from .wire_support import FAST, run_transfer, saved

#: The lean reader is the default; ``lean_reader`` off sends every request through httpx
#: (as a proxy or an unusual body does).
READERS = {"lean": {}, "httpx": {"lean_reader": False}}
TEXT = b"".join(b"line %d of a text that compresses well\n" % i for i in range(20_000))
#: A text whose gzip form (about half its size) is larger than the probe's window (64 KiB).
HEX_TEXT = make_data(300_000, seed=20).hex().encode()


def transfer(store: Store, tmp_path: Path, url: str, reader: str, **fields: Any) -> Download:
    settings = EngineSettings(**{**FAST, "max_tries": 4, **READERS[reader]})
    return run_transfer(store, tmp_path, url, settings, **fields)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("asked", [None, "gzip, deflate, br", "*"], ids=["own", "browser", "any"])
def test_every_request_asks_for_identity_whatever_the_user_sent(
    fault_server: FaultServer, store: Store, tmp_path: Path, reader: str, asked: str | None
) -> None:
    # The server compresses whenever a request accepts gzip: any request that let a user's
    # Accept-Encoding through would be answered gzip-coded.
    data = make_data(700_000, seed=21)
    ranged = fault_server.add("/ranged.bin", data, etag="v1", gzip=True)
    whole = fault_server.add("/whole.bin", data, etag="v1", gzip=True, ignore_range=True)
    headers = {"Accept-Encoding": asked} if asked else {}
    assert saved(transfer(store, tmp_path, ranged, reader, headers=headers)) == data
    assert saved(transfer(store, tmp_path, whole, reader, headers=headers)) == data
    split = fault_server.stats("/ranged.bin")
    assert split.requests > 2 and set(split.statuses) == {206}  # the probe and its ranges
    one = fault_server.stats("/whole.bin")
    assert one.statuses == [200]  # the probe is the single stream
    for record in split.log + one.log:
        # One header, identity only (two would be joined by the server: "identity, gzip").
        assert record.headers.get("accept-encoding") == "identity", record


@pytest.mark.parametrize("reader", READERS)
def test_a_gzip_text_is_saved_decoded(
    fault_server: FaultServer, store: Store, tmp_path: Path, reader: str
) -> None:
    # A server that compresses although asked for identity: the file is saved as a browser
    # saves it, decoded.
    url = fault_server.add("/notes.txt", TEXT, gzip="always", ignore_range=True)
    done = transfer(store, tmp_path, url, reader)
    assert saved(done) == TEXT
    assert done.size == len(TEXT)
    assert fault_server.stats("/notes.txt").bytes_sent < len(TEXT) // 5  # it came compressed


@pytest.mark.parametrize("reader", READERS)
def test_a_content_coded_range_is_never_spliced(
    fault_server: FaultServer, store: Store, tmp_path: Path, reader: str
) -> None:
    # Ranges of the gzip representation (the fault server's gzip="always" counts them in
    # coded bytes): no range of it is ever written into the file; the download goes on as
    # one stream of the whole representation, decoded.
    url = fault_server.add("/coded.bin", HEX_TEXT, etag="v1", gzip="always")
    done = transfer(store, tmp_path, url, reader)
    assert saved(done) == HEX_TEXT
    ranges = fault_server.stats("/coded.bin").ranges
    window = (0, FAST["min_split_size"] - 1)
    # The probe, then only the whole as one stream (asked twice on the lean path: the lean
    # reader hands a coded body over to httpx, which asks again).
    assert ranges[0] == window and set(ranges[1:]) == {(0, None)}, ranges


# -- the decoder itself (sans-I/O) ---------------------------------------------------------------


def _chunks(blob: bytes, size: int = 1000) -> list[bytes]:
    return [blob[i:i + size] for i in range(0, len(blob), size)]


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "coded"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("GZIP ", gzip.compress(TEXT)),
        ("deflate", _deflate(TEXT, zlib.MAX_WBITS)),  # RFC 9110 §8.4.1.2: the zlib format
        ("deflate", _deflate(TEXT, -zlib.MAX_WBITS)),  # raw deflate, as some servers send
        ("gzip, gzip", gzip.compress(gzip.compress(TEXT))),
        ("identity, gzip", gzip.compress(TEXT)),
        ("gzip", gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:])),  # two members
    ],
)
def test_each_coding_is_decoded_in_bounded_pieces(coding: str, coded: bytes) -> None:
    pieces = list(decoded(_chunks(coded), coding, piece=4096, max_expansion=100))
    assert b"".join(pieces) == TEXT
    assert max(len(p) for p in pieces) <= 4096


def test_a_coding_freight_does_not_know_is_saved_as_sent() -> None:
    # Chromium passes a body with an unknown coding through as it came ("Content-Encoding:
    # utf-8" from a misconfigured server), and so does Freight.
    assert b"".join(decoded(_chunks(TEXT), "utf-8", piece=4096, max_expansion=100)) == TEXT


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br"])
def test_a_known_coding_freight_cannot_decode_is_a_clear_error(coding: str) -> None:
    with pytest.raises(ProtocolViolation, match="cannot decode"):
        list(decoded([b"\x0b\x02\x80hello\x03"], coding, piece=4096, max_expansion=100))


def test_codings_stacked_over_and_over_are_refused() -> None:
    with pytest.raises(ProtocolViolation, match="coded the body 1000 times"):
        list(decoded([b"x"], ", ".join(["gzip"] * 1000), piece=4096, max_expansion=100))


def test_zero_padding_after_a_gzip_member_is_not_the_files() -> None:
    padded = gzip.compress(TEXT) + bytes(512)
    assert b"".join(decoded(_chunks(padded), "gzip", piece=4096, max_expansion=100)) == TEXT


def test_a_corrupt_or_truncated_body_is_an_error() -> None:
    coded = gzip.compress(TEXT)
    with pytest.raises(ProtocolViolation, match="corrupt"):
        list(decoded([coded[:100] + b"\xff" * 100 + coded[200:]], "gzip", piece=4096,
                     max_expansion=100))
    with pytest.raises(TransientError, match="ended"):
        list(decoded([coded[: len(coded) // 2]], "gzip", piece=4096, max_expansion=100))


def test_the_settings_default_is_the_decoders() -> None:
    from freight.config import SETTINGS
    from freight.engine.http.decoding import DEFAULT_MAX_EXPANSION

    assert SETTINGS["max_expansion"].default == EngineSettings().max_expansion
    assert EngineSettings().max_expansion == DEFAULT_MAX_EXPANSION
    assert EngineSettings.from_settings({"max_expansion": 0}).max_expansion == 0


def _zeros_gzip(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


def test_the_expansion_bound_applies_past_the_floor_only() -> None:
    bomb = _zeros_gzip(DECODED_FLOOR + (8 << 20))  # ~1000x: over the ratio past the floor
    total = 0
    with pytest.raises(ProtocolViolation, match="max_expansion") as caught:
        for piece in decoded(_chunks(bomb, 16 * 1024), "gzip", piece=1 << 20,
                             max_expansion=100):
            total += len(piece)
    # Stopped at the piece that crossed the floor: what came before it is all that passed.
    assert DECODED_FLOOR - (1 << 20) <= total <= DECODED_FLOOR
    assert "decompression bomb" in str(caught.value)
    # Under the floor any ratio is fine; 0 turns the bound off; a generous ratio lets it by.
    small = _zeros_gzip(DECODED_FLOOR)
    assert sum(map(len, decoded(_chunks(small, 16 * 1024), "gzip", piece=1 << 20,
                                max_expansion=100))) == DECODED_FLOOR
    for ratio in (0, 5000):
        assert sum(map(len, decoded(_chunks(bomb, 16 * 1024), "gzip", piece=1 << 20,
                                    max_expansion=ratio))) == DECODED_FLOOR + (8 << 20)
