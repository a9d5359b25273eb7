"""The request bytes of the lean reader and the loop's (lean.request_head), and what a small
download sends on the wire: each download's own headers in its own request only."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultserver import FaultServer, make_data
from freight.config import EngineSettings
from freight.engine.http.lean import request_head
from freight.errors import ProtocolViolation
from freight.store import Store

from .quick_support import Loop, add
from .wire_support import FAST


@pytest.mark.parametrize("name", ["User-Agent", "X-Token", "Cookie"])
def test_no_header_sent_may_hold_a_line_break(name):
    # RFC 9112 §2.2: a bare CR or LF in a field would end it early (header injection).
    for value in ("a\r\nInjected: 1", "a\nInjected: 1", "a\rInjected: 1"):
        with pytest.raises(ProtocolViolation, match="line break"):
            request_head("http://h/f", {name: value}, "freight")


def test_the_readers_own_headers_are_written_once():
    payload = request_head(
        "http://h:8080/a%20b?x=1",
        {"Host": "evil", "Connection": "close", "user-agent": "mine/1", "Accept-Encoding": "br",
         "Range": "bytes=0-9", "Cookie": "c=1"},
        "freight/1",
    )
    assert payload == (
        b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: mine/1\r\n"
        b"Accept-Encoding: identity\r\nRange: bytes=0-9\r\nCookie: c=1\r\n\r\n"
    )


def test_two_downloads_of_one_origin_send_each_its_own_headers(
    fault_server: FaultServer, tmp_path: Path
):
    # Kept-alive connections and whatever the reader keeps per origin carry nothing of one
    # download's request into another's.
    store = Store(tmp_path / "freight.db")
    loop = Loop(store, EngineSettings(**FAST))
    data = make_data(3000, seed=3)
    fault_server.add("/h.bin", data=data)
    asked = [
        {"Cookie": "a=1", "Referer": "http://one.example/"},
        {"Cookie": "b=2"},
        {"X-Other": "z"},
        {},
    ]
    try:
        for i, headers in enumerate(asked):
            ended = loop.run(add(store, tmp_path, fault_server.url(f"/h.bin?n={i}"),
                                 headers=headers))
            assert ended.handed_over is None
    finally:
        loop.close()
        store.close()
    sent = fault_server.stats("/h.bin").log
    assert len(sent) == len(asked) and fault_server.stats("/h.bin").connections == 1
    for record, headers in zip(sent, asked, strict=True):
        own = {k.lower(): v for k, v in headers.items()}
        for name in ("cookie", "referer", "x-other"):
            assert record.headers.get(name) == own.get(name), (name, record.headers)
