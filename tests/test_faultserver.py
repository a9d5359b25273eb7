"""The fault server must do exactly what it promises, byte for byte: engine tests rely on it.

Checked with plain httpx where a client's view matters and with raw sockets where the bytes on
the wire matter (framing, truncation, stalls).
"""

from __future__ import annotations

import gzip
import socket
import threading
import time

import httpx
import pytest
from faultserver import FaultServer, make_data, parse_range, resolve_range

DATA = make_data(100_000, seed=1)


# -- raw socket helpers ----------------------------------------------------------------------------


def request(path: str, method: str = "GET", version: str = "HTTP/1.1", **headers: str) -> bytes:
    hdrs = {"Host": "127.0.0.1", "Connection": "close"}
    hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in hdrs.items() if v]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_all(sock: socket.socket) -> bytes:
    out = []
    while True:
        b = sock.recv(65536)
        if not b:
            return b"".join(out)
        out.append(b)


def raw(srv: FaultServer, data: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(data)
        return read_all(s)


def split(resp: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


@pytest.fixture
def client():
    with httpx.Client(timeout=5) as c:
        yield c


# -- plain serving, HEAD, keep-alive ---------------------------------------------------------------


def test_get_and_head(fault_server, client):
    url = fault_server.add("/f.bin", data=DATA, etag="v1", content_type="application/x-test")
    assert url == f"http://127.0.0.1:{fault_server.port}/f.bin"
    r = client.get(url)
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["etag"] == '"v1"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "application/x-test"
    h = client.head(url)
    assert h.status_code == 200
    assert h.content == b""
    assert h.headers["content-length"] == str(len(DATA))
    st = fault_server.wait_idle("/f.bin")
    assert st.requests == 2
    assert st.methods == ["GET", "HEAD"]
    assert st.statuses == [200, 200]
    assert st.bytes_sent == len(DATA)
    assert st.ranges == [None, None]
    assert st.current == 0 and st.max_concurrent == 1


def test_head_refused(fault_server, client):
    url = fault_server.add("/f", data=DATA, head="405")
    r = client.head(url)
    assert r.status_code == 405
    assert client.get(url).content == DATA


def test_keep_alive_raw_and_pipelined(fault_server):
    fault_server.add("/a", data=b"hello")
    two = request("/a", Connection="keep-alive") + request("/a")
    resp = raw(fault_server, two)
    assert resp.count(b"HTTP/1.1 200 OK") == 2
    assert resp.endswith(b"\r\n\r\nhello")
    st = fault_server.stats("/a")
    assert st.requests == 2 and st.connections == 1


def test_keep_alive_httpx_reuses_one_connection(fault_server, client):
    url = fault_server.add("/a", data=DATA)
    for _ in range(3):
        assert client.get(url).content == DATA
    assert fault_server.stats("/a").connections == 1
    assert fault_server.connections_total == 1


def test_http10_closes(fault_server):
    fault_server.add("/a", data=b"xyz")
    resp = raw(fault_server, request("/a", version="HTTP/1.0", Connection=""))
    status, headers, body = split(resp)
    assert status == 200 and body == b"xyz" and headers["connection"] == "close"


def test_unknown_path_and_method(fault_server, client):
    assert client.get(fault_server.url("/nope")).status_code == 404
    assert fault_server.stats("/nope").statuses == [404]
    url = fault_server.add("/a", data=b"x")
    r = client.post(url, content=b"body is read and ignored")
    assert r.status_code == 405
    assert client.get(url).content == b"x"  # same connection still usable


def test_host_alias_is_same_server(fault_server, client):
    fault_server.add("/a", data=DATA)
    alias = fault_server.host_alias_url("/a")
    assert alias == f"http://localhost:{fault_server.port}/a"
    r = client.get(alias)
    assert r.content == DATA
    assert fault_server.stats("/a").log[0].headers["host"] == f"localhost:{fault_server.port}"


def test_query_paths(fault_server, client):
    fault_server.add("/s?sig=1", data=b"one")
    fault_server.add("/p", data=b"plain")
    assert client.get(fault_server.url("/s?sig=1")).content == b"one"
    assert client.get(fault_server.url("/p?anything=2")).content == b"plain"
    assert client.get(fault_server.url("/s?sig=2")).status_code == 404


# -- ranges (RFC 9110 §14) and If-Range (§13.1.5) --------------------------------------------------


@pytest.mark.parametrize(
    "value, start, end",
    [("bytes=0-9", 0, 9), ("bytes=99990-", 99990, 99999), ("bytes=-10", 99990, 99999),
     ("bytes=50-200000", 50, 99999), ("bytes=-200000", 0, 99999), ("bytes=7-7", 7, 7)],
)
def test_single_ranges(fault_server, client, value, start, end):
    url = fault_server.add("/f", data=DATA)
    r = client.get(url, headers={"Range": value})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert r.headers["content-length"] == str(end - start + 1)
    assert r.content == DATA[start : end + 1]
    assert fault_server.stats("/f").bytes_sent == end - start + 1
    assert fault_server.stats("/f").ranges == [parse_range(value)]


@pytest.mark.parametrize("value", ["bytes=100000-", "bytes=200000-300000", "bytes=-0"])
def test_unsatisfiable(fault_server, client, value):
    url = fault_server.add("/f", data=DATA)
    r = client.get(url, headers={"Range": value})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(DATA)}"


def test_empty_file(fault_server, client):
    url = fault_server.add("/empty", data=b"")
    r = client.get(url, headers={"Range": "bytes=0-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */0"
    r = client.get(url)
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"


@pytest.mark.parametrize("value", ["bytes=0-1,5-6", "bytes=9-3", "items=0-5", "bytes=x-"])
def test_ranges_ignored(fault_server, client, value):
    url = fault_server.add("/f", data=DATA)
    r = client.get(url, headers={"Range": value})
    assert r.status_code == 200 and r.content == DATA
    assert fault_server.stats("/f").ranges == [value]


def test_range_ignored_on_head(fault_server, client):
    url = fault_server.add("/f", data=DATA)
    r = client.head(url, headers={"Range": "bytes=0-9"})
    assert r.status_code == 200 and r.headers["content-length"] == str(len(DATA))


def test_if_range_etag(fault_server, client):
    url = fault_server.add("/f", data=DATA, etag="v1")
    ok = client.get(url, headers={"Range": "bytes=10-19", "If-Range": '"v1"'})
    assert ok.status_code == 206 and ok.content == DATA[10:20]
    bad = client.get(url, headers={"Range": "bytes=10-19", "If-Range": '"v0"'})
    assert bad.status_code == 200 and bad.content == DATA
    weak = client.get(url, headers={"Range": "bytes=10-19", "If-Range": 'W/"v1"'})
    assert weak.status_code == 200


def test_weak_etag_never_matches_if_range(fault_server, client):
    url = fault_server.add("/f", data=DATA, etag="v1", weak_etag=True)
    r = client.get(url, headers={"Range": "bytes=0-0", "If-Range": 'W/"v1"'})
    assert r.headers["etag"] == 'W/"v1"'
    assert r.status_code == 200
    assert client.get(url, headers={"Range": "bytes=0-0"}).status_code == 206


def test_if_range_date(fault_server, client):
    lm = "Wed, 21 Oct 2015 07:28:00 GMT"
    url = fault_server.add("/f", data=DATA, last_modified=lm)
    r = client.get(url, headers={"Range": "bytes=0-3", "If-Range": lm})
    assert r.headers["last-modified"] == lm
    assert r.status_code == 206 and r.content == DATA[:4]
    r = client.get(url, headers={"Range": "bytes=0-3", "If-Range": "Wed, 21 Oct 2015 07:28:01 GMT"})
    assert r.status_code == 200
    r = client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"some-etag"'})
    assert r.status_code == 200


def test_validators_forms(fault_server, client):
    r = client.get(fault_server.add("/a", data=b"a", last_modified=0))
    assert r.headers["last-modified"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert "etag" not in r.headers
    r = client.get(fault_server.add("/b", data=b"b", etag=True))
    assert len(r.headers["etag"]) == 18
    r = client.get(fault_server.add("/c", data=b"c", etag='"already"'))
    assert r.headers["etag"] == '"already"'
    r = client.get(fault_server.add("/d", data=b"d"))
    assert "etag" not in r.headers and "last-modified" not in r.headers


def test_ignore_range(fault_server, client):
    url = fault_server.add("/f", data=DATA, ignore_range=True)
    r = client.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 200 and r.content == DATA
    assert "accept-ranges" not in r.headers
    assert fault_server.stats("/f").ranges == [(10, 19)]


# -- framing ---------------------------------------------------------------------------------------


def test_no_length(fault_server, client):
    fault_server.add("/f", data=DATA, no_length=True)
    status, headers, body = split(raw(fault_server, request("/f", Connection="keep-alive")))
    assert status == 200
    assert "content-length" not in headers and "transfer-encoding" not in headers
    assert headers["connection"] == "close"
    assert body == DATA
    assert client.get(fault_server.url("/f")).content == DATA


def test_chunked(fault_server, client):
    fault_server.add("/f", data=DATA, chunked=True)
    status, headers, body = split(raw(fault_server, request("/f")))
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert body.startswith(b"%x\r\n" % len(DATA))  # one write: smaller than 256 KiB
    assert body.endswith(b"\r\n0\r\n\r\n")
    r = client.get(fault_server.url("/f"), headers={"Range": "bytes=5-"})
    assert r.status_code == 206 and r.content == DATA[5:]
    assert fault_server.stats("/f").bytes_sent == 2 * len(DATA) - 5  # framing not counted


def test_extra_bytes(fault_server):
    fault_server.add("/f", data=b"0123456789", extra_bytes=7)
    status, headers, body = split(raw(fault_server, request("/f", Connection="keep-alive")))
    assert headers["content-length"] == "10"
    assert body == b"0123456789" + b"!" * 7


# -- faults mid-body -------------------------------------------------------------------------------


def test_drop_after(fault_server, client):
    fault_server.add("/f", data=DATA, drop_after=1000)
    status, headers, body = split(raw(fault_server, request("/f", Connection="keep-alive")))
    assert status == 200 and headers["content-length"] == str(len(DATA))
    assert body == DATA[:1000]
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(fault_server.url("/f"), headers={"Range": "bytes=500-"})
    assert fault_server.stats("/f").bytes_sent == 2000


def test_drop_after_times(fault_server, client):
    url = fault_server.add("/f", data=DATA, drop_after={"times": 2, "bytes": 0})
    assert client.head(url).status_code == 200  # HEAD has no body: does not use a drop
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(url)
    assert client.get(url).content == DATA
    assert fault_server.stats("/f").bytes_sent == len(DATA)


def test_drop_beyond_body_is_no_drop(fault_server, client):
    url = fault_server.add("/f", data=DATA, drop_after=5000)
    assert client.get(url, headers={"Range": "bytes=0-99"}).content == DATA[:100]


def test_stall_then_unstall(fault_server):
    fault_server.add("/f", data=DATA, stall_after=300)
    with socket.create_connection(("127.0.0.1", fault_server.port), timeout=5) as s:
        s.sendall(request("/f"))
        got = b""
        while not got.endswith(DATA[:300]):
            got += s.recv(65536)
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(65536)
        assert fault_server.stats("/f").current == 1
        fault_server.unstall("/f")
        s.settimeout(5)
        got += read_all(s)
    assert split(got)[2] == DATA


def test_stall_seconds_and_times(fault_server, client):
    url = fault_server.add("/f", data=DATA, stall_after={"times": 1, "bytes": 10},
                           stall_seconds=0.3)
    t = time.monotonic()
    assert client.get(url).content == DATA
    assert time.monotonic() - t >= 0.3
    t = time.monotonic()
    assert client.get(url).content == DATA
    assert time.monotonic() - t < 0.25


def test_stop_with_stalled_connection_is_quick():
    srv = FaultServer().start()
    srv.add("/f", data=DATA, stall_after=10)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(request("/f"))
    got = b""
    while not got.endswith(DATA[:10]):
        got += s.recv(65536)
    t = time.monotonic()
    srv.stop()
    assert time.monotonic() - t < 2
    assert not srv._thread.is_alive()
    assert read_all(s) == b""  # closed by stop()
    s.close()
    srv.stop()  # idempotent


# -- statuses --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [503, 429, 500, 403, 410, 404])
def test_status_script(fault_server, client, code):
    url = fault_server.add("/f", data=DATA, status_script=[code, code], retry_after=1)
    for _ in range(2):
        r = client.get(url)
        assert r.status_code == code and r.headers["retry-after"] == "1"
    r = client.get(url)
    assert r.status_code == 200 and r.content == DATA
    assert fault_server.stats("/f").statuses == [code, code, 200]


def test_status_script_none_entry_without_retry_after(fault_server, client):
    url = fault_server.add("/f", data=b"x", status_script=[None, 500])
    assert client.get(url).status_code == 200
    r = client.get(url)
    assert r.status_code == 500 and "retry-after" not in r.headers
    assert client.get(url).status_code == 200


def test_max_concurrent(fault_server, client):
    url = fault_server.add("/f", data=DATA, max_concurrent=1, stall_after={"times": 1, "bytes": 0})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", httpx.get(url, timeout=5)))
    t.start()
    deadline = time.monotonic() + 5
    while fault_server.stats("/f").current < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    r = client.get(url)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    fault_server.unstall("/f")
    t.join(5)
    assert result["r"].content == DATA
    assert client.get(url).status_code == 200
    st = fault_server.wait_idle("/f")
    assert st.max_concurrent == 2 and st.statuses == [200, 429, 200]  # in sending order


def test_concurrency_is_counted(fault_server):
    url = fault_server.add("/f", data=DATA, latency=0.2)
    threads = [threading.Thread(target=httpx.get, args=(url,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    st = fault_server.wait_idle("/f")
    assert st.max_concurrent == 4 and st.current == 0 and st.connections == 4


# -- content changes, signed URLs ------------------------------------------------------------------


def test_change_after(fault_server, client):
    new = make_data(5000, seed=2)
    url = fault_server.add("/f", data=DATA, etag="v1", change_after=1, changed_data=new)
    assert client.get(url).content == DATA
    r = client.get(url, headers={"Range": "bytes=10-", "If-Range": '"v1"'})
    assert r.status_code == 200 and r.content == new
    assert r.headers["etag"] not in ('"v1"', None)


def test_set_data(fault_server, client):
    lm = "Wed, 21 Oct 2015 07:28:00 GMT"
    url = fault_server.add("/f", data=DATA, etag="v1", last_modified=lm)
    fault_server.set_data("/f", b"new", etag="v2")
    r = client.get(url)
    assert r.content == b"new" and r.headers["etag"] == '"v2"'
    assert r.headers["last-modified"] == "Wed, 21 Oct 2015 07:29:00 GMT"
    fault_server.set_data("/f", b"newer")
    r2 = client.get(url)
    assert r2.content == b"newer" and r2.headers["etag"] not in ('"v2"', '"v1"')


def test_expired_and_refreshed(fault_server, client):
    url = fault_server.add("/dl?sig=old", data=DATA, etag="v1", expires_at=time.time() - 1)
    assert client.get(url).status_code == 403
    fresh = fault_server.refresh("/dl?sig=old")
    assert fresh.endswith("/dl?sig=refreshed1")
    r = client.get(fresh, headers={"Range": "bytes=0-9", "If-Range": '"v1"'})
    assert r.status_code == 206 and r.content == DATA[:10]
    fault_server.set_data(fresh.split(str(fault_server.port))[1], b"v2 data", etag="v2")
    assert client.get(url).status_code == 403
    fault_server.refresh("/dl?sig=old", new_path="/dl?sig=third", expires_at=time.time() + 60)
    r = client.get(fault_server.url("/dl?sig=third"))
    assert r.content == b"v2 data" and r.headers["etag"] == '"v2"'


def test_expires_in_future(fault_server, client):
    url = fault_server.add("/f", data=b"x", expires_at=time.time() + 60)
    assert client.get(url).status_code == 200


# -- redirects -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_status(fault_server, client, code):
    target = fault_server.add("/target", data=b"T")
    url = fault_server.add("/r", redirect_to=target, redirect_status=code)
    r = client.get(url)
    assert r.status_code == code and r.headers["location"] == target
    assert client.get(url, follow_redirects=True).content == b"T"


def test_redirect_chain_loop_and_cross_host(fault_server, other_fault_server, client):
    final = other_fault_server.add("/final", data=DATA)
    assert other_fault_server.port != fault_server.port
    fault_server.add("/b", redirect_to=final)
    url = fault_server.add("/a", redirect_to="/b")  # a relative Location, as given
    r = client.get(url, follow_redirects=True)
    assert r.content == DATA and len(r.history) == 2
    assert str(r.url) == final
    assert other_fault_server.stats("/final").requests == 1
    loop = fault_server.add("/x", redirect_to="/y")
    fault_server.add("/y", redirect_to="/x")
    with pytest.raises(httpx.TooManyRedirects):
        client.get(loop, follow_redirects=True)


# -- headers, auth, encoding, pacing ---------------------------------------------------------------


def test_headers(fault_server, client):
    cd = "attachment; filename*=UTF-8''na%C3%AFve.txt"
    url = fault_server.add(
        "/f", data=b"x", content_disposition=cd,
        headers={"X-Extra": "1", "Accept-Ranges": None, "Server": "other"},
    )
    r = client.get(url)
    assert r.headers["content-disposition"] == cd
    assert r.headers["x-extra"] == "1" and r.headers["server"] == "other"
    assert "accept-ranges" not in r.headers


def test_require_cookie_and_header(fault_server, client):
    url = fault_server.add("/c", data=b"c", require_cookie="session=abc")
    assert client.get(url).status_code == 403
    assert client.get(url, headers={"Cookie": "a=1; session=abc"}).content == b"c"
    url = fault_server.add("/h", data=b"h", require_header=("Authorization", "Bearer x"))
    assert client.get(url, headers={"Authorization": "Bearer y"}).status_code == 403
    assert client.get(url, headers={"Authorization": "Bearer x"}).content == b"h"
    assert fault_server.stats("/h").log[1].headers["authorization"] == "Bearer x"


def test_gzip(fault_server, client):
    text = b"freight " * 5000
    url = fault_server.add("/g", data=text, etag="v1", gzip=True)
    r = client.get(url)  # httpx accepts gzip by default
    assert r.headers["content-encoding"] == "gzip" and r.headers["etag"] == '"v1-gzip"'
    assert r.content == text
    assert int(r.headers["content-length"]) == len(gzip.compress(text, mtime=0))
    r = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers and r.headers["etag"] == '"v1"'
    assert r.headers["content-length"] == str(len(text)) and r.content == text
    assert client.get(url, headers={"Accept-Encoding": "gzip;q=0"}).headers.get(
        "content-encoding") is None
    url = fault_server.add("/always", data=text, gzip="always")
    status, headers, body = split(raw(fault_server, request("/always",
                                                            Accept_Encoding="identity")))
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == text


def test_rate_and_latency(fault_server, client):
    url = fault_server.add("/slow", data=bytes(64 * 1024), rate=256 * 1024)
    t = time.monotonic()
    assert len(client.get(url).content) == 64 * 1024
    assert 0.25 <= time.monotonic() - t < 1.5
    url = fault_server.add("/late", data=b"x", latency=0.3)
    t = time.monotonic()
    assert client.get(url).content == b"x"
    assert time.monotonic() - t >= 0.3


def test_large_file_is_fast(fault_server):
    big = make_data(64 << 20, seed=3)
    url = fault_server.add("/big", data=big, etag="v1")
    quarter = len(big) // 4
    parts: dict[int, bytes] = {}

    def fetch(i: int) -> None:
        rng = f"bytes={i * quarter}-{(i + 1) * quarter - 1}"
        parts[i] = httpx.get(url, headers={"Range": rng}, timeout=10).content

    t = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    elapsed = time.monotonic() - t
    assert b"".join(parts[i] for i in range(4)) == big
    assert fault_server.stats("/big").bytes_sent == len(big)
    assert elapsed < 5


# -- bad input and pure helpers --------------------------------------------------------------------


def test_bad_input_is_refused(fault_server):
    with pytest.raises(TypeError, match="unknown behaviour"):
        fault_server.add("/f", data=b"x", drop_afterr=3)
    with pytest.raises(ValueError):
        fault_server.add("/f", data=b"x", redirect_to="/a", redirect_status=200)
    with pytest.raises(ValueError):
        fault_server.add("no-slash", data=b"x")
    with pytest.raises(ValueError):
        fault_server.add("/f", data=b"x", drop_after={"bytes": -1})
    with pytest.raises(ValueError):
        fault_server.add("/f", data=b"x", change_after=1)
    with pytest.raises(KeyError):
        fault_server.stats("/never")
    assert raw(fault_server, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    with pytest.raises(RuntimeError, match="start"):
        FaultServer().url("/x")


def test_reset_stats(fault_server, client):
    url = fault_server.add("/f", data=b"abc", status_script=[500])
    client.get(url)
    fault_server.reset_stats("/f")
    assert fault_server.stats("/f").requests == 0
    assert client.get(url).status_code == 200  # the script stays consumed


@pytest.mark.parametrize(
    "value, parsed",
    [("bytes=0-0", (0, 0)), ("bytes=5-", (5, None)), ("bytes=-3", (None, 3)),
     ("BYTES = 1 - 2", (1, 2)), ("bytes=3-1", None), ("bytes=-", None), ("bytes=1-2,4-5", None),
     ("pages=1-2", None)],
)
def test_parse_range(value, parsed):
    assert parse_range(value) == parsed


@pytest.mark.parametrize(
    "spec, total, span",
    [((0, None), 10, (0, 9)), ((9, 20), 10, (9, 9)), ((10, None), 10, None),
     ((None, 3), 10, (7, 9)), ((None, 30), 10, (0, 9)), ((None, 0), 10, None),
     ((0, None), 0, None), ((None, 5), 0, None)],
)
def test_resolve_range(spec, total, span):
    assert resolve_range(spec, total) == span


def test_chunked_drop_leaves_an_incomplete_body(fault_server, client):
    url = fault_server.add("/f", data=DATA, chunked=True, drop_after=100)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)
    status, headers, body = split(raw(fault_server, request("/f")))
    assert body == b"64\r\n" + DATA[:100] + b"\r\n"  # one 100-byte chunk, then the close
    assert fault_server.stats("/f").bytes_sent == 200


def test_no_length_head(fault_server):
    fault_server.add("/f", data=DATA, no_length=True)
    status, headers, body = split(raw(fault_server, request("/f", "HEAD", Connection="")))
    assert status == 200 and body == b"" and "content-length" not in headers


def test_freight_home_fixture(freight_home):
    from freight.config import paths_from_env

    assert freight_home.is_dir() and list(freight_home.iterdir()) == []
    paths = paths_from_env()
    assert paths.portable
    assert paths.database.is_relative_to(freight_home.resolve())
