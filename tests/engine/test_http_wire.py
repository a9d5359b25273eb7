"""Both readers (lean and httpx) and a real Transfer on the wire, against the fault server on
127.0.0.1: non-ASCII paths, 1xx heads, malformed numbers, userinfo, capped and ``*`` 206s,
and secrets that never follow a cross-origin redirect — neither on the probe nor on any
later range request."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, make_data
from freight.config import EngineSettings
from freight.engine.http.request import RangeRequest
from freight.engine.http.source import HttpSource
from freight.errors import FreightError, ProtocolViolation
from freight.models import Download
from freight.store import Store

from .wire_support import FAST, run_transfer, saved

READERS = ["lean", "httpx"]
SECRETS = {"Cookie": "session=zebra-7", "Authorization": "Bearer quokka-9", "X-Custom": "own"}


@pytest.fixture
def source() -> Iterator[HttpSource]:
    src = HttpSource(EngineSettings(**FAST))
    yield src
    src.close()


def fetch(source: HttpSource, reader: str, url: str, **request: Any) -> bytes:
    """The whole body of one request through ``reader``: the lean reader takes a request with
    a lane, httpx one without."""
    lane = source.lane() if reader == "lean" else None
    reply = source.open(RangeRequest(url, **request), lane=lane)
    try:
        return b"".join(bytes(c) for c in reply.chunks(16 * 1024))
    finally:
        reply.close()
        if lane is not None:
            lane.close()


def transfer(store: Store, tmp_path: Path, url: str, **fields: Any) -> Download:
    """A real Transfer (its own HttpSource, both readers) to its end."""
    return run_transfer(store, tmp_path, url, EngineSettings(**FAST), **fields)


@pytest.mark.parametrize("reader", READERS)
def test_a_non_ascii_path_is_sent_percent_encoded(fault_server, source, reader):
    data = make_data(5000, seed=1)
    # RFC 3986 §2.1: UTF-8, percent-encoded; "€" is beyond Latin-1 too.
    fault_server.add("/%C3%BCn%C3%AFcode%20file.bin", data=data)
    fault_server.add("/%E2%82%AC.bin", data=data)
    base = fault_server.base_url
    assert fetch(source, reader, base + "/ünïcode file.bin") == data
    assert fetch(source, reader, base + "/€.bin") == data


@pytest.mark.parametrize("reader", READERS)
def test_a_redirect_to_a_raw_utf8_location(fault_server, source, reader):
    data = make_data(3000, seed=2)
    fault_server.add("/%C3%A9t%C3%A9.bin", data=data)
    fault_server.add("/go", redirect_to="/été.bin")  # raw UTF-8 in Location
    assert fetch(source, reader, fault_server.url("/go")) == data


@pytest.mark.parametrize("reader", READERS)
def test_interim_heads_are_skipped(fault_server, source, reader):
    data = make_data(4000, seed=3)
    url = fault_server.add("/hints.bin", data=data, interim=[100, 103, 103])
    assert fetch(source, reader, url) == data
    assert fetch(source, reader, url, start=1000, end=2000) == data[1000:2000]


@pytest.mark.parametrize("reader", READERS)
# "٣" (Arabic-Indic three) goes on the wire as its UTF-8 bytes.
@pytest.mark.parametrize("length", ["²", "9" * 5000, "-5", "1_0", "0x10",
                                    "٣".encode().decode("latin-1")])
def test_a_malformed_content_length_is_a_protocol_violation(fault_server, source, reader,
                                                             length):
    url = fault_server.add("/bad.bin", data=b"x" * 10, headers={"Content-Length": length})
    with pytest.raises(ProtocolViolation):
        fetch(source, reader, url)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("value", ["bytes ²-9/10", "bytes 0-9/" + "9" * 5000, "bytes -0-9/10"])
def test_a_malformed_content_range_is_a_protocol_violation(fault_server, source, reader,
                                                            value):
    url = fault_server.add("/bad.bin", data=b"x" * 10, headers={"Content-Range": value})
    with pytest.raises(ProtocolViolation):
        fetch(source, reader, url)


@pytest.mark.parametrize("reader", READERS)
def test_userinfo_is_basic_auth(fault_server, source, reader, caplog):
    caplog.set_level(logging.DEBUG)
    data = make_data(2000, seed=4)
    basic = "Basic " + base64.b64encode("ünï:p@ss".encode()).decode()
    fault_server.add("/private.bin", data=data, require_header=("Authorization", basic))
    url = f"http://%C3%BCn%C3%AF:p%40ss@127.0.0.1:{fault_server.port}/private.bin"
    lane = source.lane() if reader == "lean" else None
    reply = source.open(RangeRequest(url), lane=lane)
    assert "p%40ss" not in reply.url and "@" not in reply.url
    reply.close()
    # Later ranges go to the reply's URL, without userinfo: the credential still goes along.
    assert fetch(source, reader, reply.url, start=100, end=900) == data[100:900]
    assert fault_server.stats("/private.bin").statuses == [206, 206]
    assert "p@ss" not in caplog.text and "p%40ss" not in caplog.text


def test_userinfo_in_a_real_transfer(fault_server, store, tmp_path):
    data = make_data(600_000, seed=5)
    basic = "Basic " + base64.b64encode(b"user:pw").decode()
    fault_server.add("/private.bin", data=data, etag="v1",
                     require_header=("Authorization", basic))
    url = f"http://user:pw@127.0.0.1:{fault_server.port}/private.bin"
    done = transfer(store, tmp_path, url)
    assert saved(done) == data
    stats = fault_server.stats("/private.bin")
    assert set(stats.statuses) == {206} and stats.requests > 1  # every range was let in
    assert "pw" not in (done.final_url or "").split("/")[2]


def test_a_capped_206_is_continued(fault_server, store, tmp_path):
    # A server that caps every body at 100 KiB with the true total: never finalised short.
    data = make_data(1_000_000, seed=6)
    url = fault_server.add("/capped.bin", data=data, etag="v1", max_body=100 * 1024)
    done = transfer(store, tmp_path, url)
    assert saved(done) == data
    stats = fault_server.stats("/capped.bin")
    assert set(stats.statuses) == {206}
    print("capped: requests", stats.requests, "sent", stats.bytes_sent / len(data))
    assert stats.bytes_sent <= 1.1 * len(data)  # the rest is asked for, never sent twice


def test_a_star_total_is_never_taken_for_the_whole_file(fault_server, store, tmp_path):
    # "bytes 0-N/*": the size is unknown (RFC 9110 §14.4); the file is fetched whole.
    data = make_data(1_000_000, seed=7)
    url = fault_server.add("/star.bin", data=data, etag="v1", star_total=True,
                           max_body=128 * 1024)
    done = transfer(store, tmp_path, url)
    assert saved(done) == data
    stats = fault_server.stats("/star.bin")
    assert None in stats.ranges and 200 in stats.statuses  # asked for without Range
    print("star: requests", stats.requests, "sent", stats.bytes_sent / len(data))
    assert stats.bytes_sent <= 1.2 * len(data)


def test_secrets_stay_with_their_origin_after_a_cross_origin_redirect(
    fault_server: FaultServer, other_fault_server: FaultServer, store: Store, tmp_path: Path
) -> None:
    data = make_data(1_500_000, seed=8)
    # 127.0.0.1:P1 → localhost:P2: another host and another port, as a CDN would be.
    target = other_fault_server.host_alias_url("/blob.bin")
    other_fault_server.add("/blob.bin", data=data, etag="v1", rate=4 * 1024 * 1024)
    start = fault_server.add("/get", redirect_to=target, require_cookie=SECRETS["Cookie"])
    done = transfer(store, tmp_path, start, headers=SECRETS)
    assert saved(done) == data
    assert done.final_url == target
    first = fault_server.stats("/get").log
    assert first and all(r.headers.get("cookie") == SECRETS["Cookie"] for r in first)
    assert all(r.headers.get("x-custom") == "own" for r in first)
    blob = other_fault_server.stats("/blob.bin")
    assert blob.requests > 2 and any(r.range not in (None, (0, None)) for r in blob.log)
    for record in blob.log:  # the probe and every later range request
        assert not {"cookie", "authorization", "x-custom"} & set(record.headers), record
        assert "zebra" not in str(record.headers) and "quokka" not in str(record.headers)


@pytest.mark.parametrize("reader", READERS)
def test_redirect_limits(fault_server, source, reader):
    fault_server.add("/a", redirect_to="/b")
    fault_server.add("/b", redirect_to="/a")
    with pytest.raises(ProtocolViolation, match="loop"):
        fetch(source, reader, fault_server.url("/a"))
    for i in range(12):
        fault_server.add(f"/hop{i}", redirect_to=f"/hop{i + 1}")
    fault_server.add("/hop12", data=b"end")
    with pytest.raises(ProtocolViolation, match="too many redirects"):
        fetch(source, reader, fault_server.url("/hop0"))  # max_redirects is 10
    assert fetch(source, reader, fault_server.url("/hop3")) == b"end"
    fault_server.add("/ftp", redirect_to="ftp://127.0.0.1/x")
    with pytest.raises(FreightError, match="unsupported scheme"):
        fetch(source, reader, fault_server.url("/ftp"))


def test_freight_get_keeps_secrets_from_the_redirect_target(
    fr, fault_server: FaultServer, other_fault_server: FaultServer
) -> None:
    # The same rule through the real `freight get` process, with the secrets sealed in the
    # database and read back by the transfer.
    data = make_data(1_200_000, seed=9)
    target = other_fault_server.host_alias_url("/blob.bin")
    other_fault_server.add("/blob.bin", data=data, etag="v1", rate=4 * 1024 * 1024)
    start = fault_server.add("/get", redirect_to=target, require_cookie=SECRETS["Cookie"],
                             require_header=("Authorization", SECRETS["Authorization"]))
    result = fr.run(start, "-x", "4", *(a for k, v in SECRETS.items() for a in ("-H", f"{k}: {v}")))
    assert result.code == 0, result
    assert (fr.dl / "blob.bin").read_bytes() == data
    assert set(fault_server.stats("/get").statuses) == {302}  # the first origin let us in
    blob = other_fault_server.stats("/blob.bin")
    assert blob.requests > 2
    for record in blob.log:
        assert not {"cookie", "authorization", "x-custom"} & set(record.headers), record
