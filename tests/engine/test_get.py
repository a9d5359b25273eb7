"""`freight get` end to end: a real process, the fault server, a real SQLite file.

Every test checks the bytes on disk (sha256) and what the server saw (its counters).
"""

from __future__ import annotations

import os

import pytest
from faultserver import make_data

from .conftest import sha256

MIB = 1024 * 1024


def saved(fr, name: str) -> bytes:
    return (fr.dl / name).read_bytes()


def test_normal_ranges_use_several_connections(fr, fault_server):
    data = make_data(4 * MIB, seed=1)
    # A per-connection rate so that the connections overlap in time.
    url = fault_server.add("/big.bin", data=data, etag="v1", rate=8 * MIB)
    res = fr.run(url, "-x", "4")
    assert res.code == 0, res
    assert sha256(saved(fr, "big.bin")) == sha256(data)
    st = fault_server.wait_idle("/big.bin")
    assert st.max_concurrent > 1
    assert set(st.statuses) == {206}
    assert st.bytes_sent < len(data) * 1.1  # hardly anything fetched twice
    # Every range request after the probe carried If-Range with the strong ETag.
    assert all(h.get("if-range") == '"v1"' for h in st.headers[1:])
    rec = res.record
    assert rec["state"] == "completed" and rec["size"] == len(data) and rec["resumable"]
    assert fr.files() == ["big.bin"]  # no .part left behind


def test_adaptive_default_completes(fr, fault_server):
    data = make_data(3 * MIB, seed=2)
    url = fault_server.add("/a.bin", data=data, last_modified=1_700_000_000)
    res = fr.run(url)
    assert res.code == 0, res
    assert sha256(saved(fr, "a.bin")) == sha256(data)
    st = fault_server.wait_idle("/a.bin")
    # Without an ETag the Last-Modified date is the If-Range validator.
    assert all("GMT" in h.get("if-range", "") for h in st.headers[1:])


def test_range_ignored_gives_the_right_file_through_one_stream(fr, fault_server):
    data = make_data(2 * MIB, seed=3)
    url = fault_server.add("/norange.bin", data=data, ignore_range=True, etag="v1")
    res = fr.run(url, "-x", "8")
    assert res.code == 0, res
    assert sha256(saved(fr, "norange.bin")) == sha256(data)
    st = fault_server.wait_idle("/norange.bin")
    assert st.requests == 1 and st.statuses == [200]
    assert st.bytes_sent == len(data)
    assert res.record["resumable"] is False


def test_head_refused_does_not_matter(fr, fault_server):
    data = make_data(300_000, seed=4)
    url = fault_server.add("/nohead.bin", data=data, head="405", etag="v1")
    res = fr.run(url)
    assert res.code == 0, res
    assert sha256(saved(fr, "nohead.bin")) == sha256(data)
    assert "HEAD" not in fault_server.stats("/nohead.bin").methods


@pytest.mark.parametrize("mode", ["no_length", "chunked"])
def test_no_content_length(fr, fault_server, mode):
    data = make_data(1 * MIB + 17, seed=5)
    url = fault_server.add(f"/{mode}.bin", data=data, ignore_range=True, **{mode: True})
    res = fr.run(url)
    assert res.code == 0, res
    assert sha256(saved(fr, f"{mode}.bin")) == sha256(data)
    assert res.record["size"] == len(data)
    assert fr.download().size == len(data)


def test_connection_dropped_mid_body(fr, fault_server):
    data = make_data(2 * MIB, seed=6)
    url = fault_server.add(
        "/drop.bin", data=data, etag="v1", drop_after={"times": 3, "bytes": 100_000}
    )
    res = fr.run(url, "-x", "4")
    assert res.code == 0, res
    assert sha256(saved(fr, "drop.bin")) == sha256(data)
    st = fault_server.wait_idle("/drop.bin")
    assert st.requests >= 4 + 3  # the dropped ranges were asked for again
    assert st.bytes_sent < len(data) + 4 * 100_000 + MIB  # resumed, not restarted


def test_connection_dropped_on_a_server_without_ranges(fr, fault_server):
    data = make_data(600_000, seed=7)
    url = fault_server.add(
        "/dropone.bin", data=data, ignore_range=True, drop_after={"times": 1, "bytes": 200_000}
    )
    res = fr.run(url)
    assert res.code == 0, res
    assert sha256(saved(fr, "dropone.bin")) == sha256(data)
    assert fault_server.stats("/dropone.bin").requests == 2  # started again from byte 0


def test_stalled_body_is_dropped_and_requeued(fr, fault_server):
    fr.settings(stall_timeout=0.5)
    data = make_data(2 * MIB, seed=8)
    url = fault_server.add(
        "/stall.bin", data=data, etag="v1", stall_after={"times": 1, "bytes": 50_000},
        stall_seconds=3600,
    )
    res = fr.run(url, "-x", "2", timeout=30)
    assert res.code == 0, res
    assert sha256(saved(fr, "stall.bin")) == sha256(data)
    assert res.elapsed < 15  # the stall did not wait for the server to give up


def test_503_with_retry_after_is_waited_out(fr, fault_server):
    data = make_data(200_000, seed=9)
    url = fault_server.add("/busy.bin", data=data, etag="v1", status_script=[503], retry_after=1)
    res = fr.run(url)
    assert res.code == 0, res
    assert sha256(saved(fr, "busy.bin")) == sha256(data)
    st = fault_server.stats("/busy.bin")
    assert st.statuses[0] == 503 and st.statuses[1] == 206
    assert res.record["elapsed"] >= 0.9  # Retry-After: 1 was honoured


def test_429_beyond_n_connections(fr, fault_server):
    data = make_data(3 * MIB, seed=10)
    url = fault_server.add(
        "/cap.bin", data=data, etag="v1", max_concurrent=2, retry_after=0, rate=4 * MIB
    )
    res = fr.run(url, "-x", "6", timeout=40)
    assert res.code == 0, res
    assert sha256(saved(fr, "cap.bin")) == sha256(data)
    st = fault_server.wait_idle("/cap.bin")
    assert 429 in st.statuses  # the limit was hit...
    # ...and the engine backed off to the host's limit instead of hammering it.
    assert st.statuses.count(429) <= 12, st.statuses
    served = [s for s in st.statuses if s == 206]
    assert len(served) >= 2


def test_file_changing_between_requests_restarts(fr, fault_server):
    old = make_data(2 * MIB, seed=11)
    new = make_data(2 * MIB + 5, seed=12)
    url = fault_server.add(
        "/chg.bin", data=old, etag="v1", change_after=1, changed_data=new, changed_etag="v2",
        rate=4 * MIB,
    )
    res = fr.run(url, "-x", "4", timeout=40)
    assert res.code == 0, res
    assert sha256(saved(fr, "chg.bin")) == sha256(new)
    assert any("restart" in n for n in res.record["notices"]), res.record["notices"]
    assert fr.download().size == len(new)


def test_file_changing_is_said_on_the_terminal(fr, fault_server):
    old = make_data(1 * MIB, seed=13)
    new = make_data(1 * MIB, seed=14)
    url = fault_server.add(
        "/chg2.bin", data=old, etag="v1", change_after=1, changed_data=new, changed_etag="v2",
        rate=2 * MIB,
    )
    res = fr.run(url, "-x", "2", json_out=False, timeout=40)
    assert res.code == 0, res
    assert "changed" in res.stderr and "restart" in res.stderr
    assert sha256(saved(fr, "chg2.bin")) == sha256(new)


def test_redirects_across_hosts_record_the_final_url(fr, fault_server, other_fault_server):
    data = make_data(1 * MIB, seed=15)
    final = other_fault_server.add("/real/file.iso", data=data, etag="v1")
    hop = fault_server.add("/hop", redirect_to=final, redirect_status=307)
    start = fault_server.add("/start", redirect_to=hop, redirect_status=301)
    res = fr.run(start, "-x", "4")
    assert res.code == 0, res
    assert res.record["final_url"] == final
    assert fr.download().final_url == final
    assert sha256(saved(fr, "file.iso")) == sha256(data)
    assert other_fault_server.stats("/real/file.iso").requests >= 1


def test_content_disposition_rfc5987_name(fr, fault_server):
    data = make_data(1000, seed=16)
    url = fault_server.add(
        "/dl?id=7", data=data,
        content_disposition="attachment; filename=\"fallback.txt\"; "
        "filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt",
    )
    res = fr.run(url)
    assert res.code == 0, res
    assert fr.files() == ["na\u00efve r\u00e9sum\u00e9.txt"]
    assert sha256(saved(fr, "na\u00efve r\u00e9sum\u00e9.txt")) == sha256(data)


@pytest.mark.parametrize(
    "disposition",
    [
        'attachment; filename="../../evil.sh"',
        "attachment; filename*=UTF-8''..%2F..%2Fevil.sh",
        'attachment; filename="/tmp/evil.sh"',
    ],
)
def test_content_disposition_traversal_stays_inside_the_folder(
    fr, fault_server, tmp_path, disposition
):
    data = b"#!/bin/sh\necho gotcha\n"
    url = fault_server.add("/x", data=data, content_disposition=disposition)
    before = set(os.listdir(tmp_path))
    res = fr.run(url)
    assert res.code == 0, res
    assert fr.files() == ["evil.sh"]
    assert saved(fr, "evil.sh") == data
    assert set(os.listdir(tmp_path)) == before | {"dl"}
    found = [os.path.join(d, f) for d, _, names in os.walk(tmp_path) for f in names]
    assert [f for f in found if f.endswith("evil.sh")] == [str(fr.dl / "evil.sh")]


def test_zero_byte_file(fr, fault_server):
    url = fault_server.add("/empty.txt", data=b"", etag="v1")
    res = fr.run(url)
    assert res.code == 0, res
    assert fr.files() == ["empty.txt"]
    assert saved(fr, "empty.txt") == b""
    assert res.record["size"] == 0


def test_zero_byte_file_without_ranges(fr, fault_server):
    url = fault_server.add("/empty2.txt", data=b"", ignore_range=True)
    res = fr.run(url)
    assert res.code == 0, res
    assert saved(fr, "empty2.txt") == b""


def test_one_byte_file(fr, fault_server):
    url = fault_server.add("/one.txt", data=b"Z", etag="v1")
    res = fr.run(url, "-x", "8")
    assert res.code == 0, res
    assert saved(fr, "one.txt") == b"Z"
    assert fault_server.stats("/one.txt").bytes_sent == 1


def test_output_name(fr, fault_server):
    data = make_data(5000, seed=17)
    url = fault_server.add(
        "/ugly-name.cgi?x=1", data=data, content_disposition="attachment; filename=server.bin"
    )
    res = fr.run(url, "-o", "chosen.dat")
    assert res.code == 0, res
    assert fr.files() == ["chosen.dat"]
    assert saved(fr, "chosen.dat") == data


def test_existing_file_is_never_overwritten(fr, fault_server):
    fr.dl.mkdir()
    (fr.dl / "report.pdf").write_bytes(b"my own report")
    (fr.dl / "src.tar.gz").write_bytes(b"my own archive")
    data = make_data(10_000, seed=18)
    res = fr.run(fault_server.add("/report.pdf", data=data))
    assert res.code == 0, res
    res2 = fr.run(fault_server.add("/src.tar.gz", data=data))
    assert res2.code == 0, res2
    assert (fr.dl / "report.pdf").read_bytes() == b"my own report"
    assert (fr.dl / "src.tar.gz").read_bytes() == b"my own archive"
    assert saved(fr, "report (1).pdf") == data
    assert saved(fr, "src (1).tar.gz") == data
    # The same URL again with --again is a new download: a third name, the first two
    # untouched (without it the finished file is left alone: test_get_rerun.py).
    res3 = fr.run(fault_server.url("/report.pdf"), "--again")
    assert res3.code == 0, res3
    assert saved(fr, "report (2).pdf") == data
    assert saved(fr, "report (1).pdf") == data


def test_checksum_right(fr, fault_server):
    data = make_data(500_000, seed=19)
    url = fault_server.add("/sum.bin", data=data, etag="v1")
    res = fr.run(url, "--checksum", f"sha256={sha256(data)}")
    assert res.code == 0, res
    assert saved(fr, "sum.bin") == data


def test_checksum_wrong_keeps_nothing_under_the_final_name(fr, fault_server):
    data = make_data(500_000, seed=20)
    url = fault_server.add("/bad.bin", data=data, etag="v1")
    res = fr.run(url, "--checksum", "sha256=" + "0" * 64)
    assert res.code == 1, res
    assert "bad.bin" not in fr.files()
    assert res.record["state"] == "failed"
    assert res.record["error_kind"] == "checksum_mismatch"


def test_speed_limit_is_a_lower_bound_on_time(fr, fault_server):
    data = make_data(2 * MIB, seed=21)
    url = fault_server.add("/slow.bin", data=data, etag="v1")
    res = fr.run(url, "--limit", "1M", "-x", "4", timeout=30)
    assert res.code == 0, res
    assert sha256(saved(fr, "slow.bin")) == sha256(data)
    # 2 MiB at 1 MiB/s: the bucket allows a fifth of a second of burst, no more.
    assert res.record["elapsed"] >= len(data) / MIB * 0.8
    assert res.record["limit"] == MIB


def test_403_on_a_fresh_download_fails(fr, fault_server):
    url = fault_server.add("/private.bin", data=b"secret", require_cookie="s=1")
    res = fr.run(url)
    assert res.code == 1, res
    assert res.record["state"] == "failed"
    assert "403" in res.record["error"]
    assert "private.bin" not in fr.files()


def test_404_fails_clearly(fr, fault_server):
    res = fr.run(fault_server.url("/missing.bin"), json_out=False)
    assert res.code == 1, res
    assert "404" in res.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ftp://127.0.0.1/x"], "http"),
        (["file:///etc/passwd"], "http"),
        (["http://"], "http"),
        (["http://127.0.0.1:9/x", "-H", "NoColonHere"], "header"),
        (["http://127.0.0.1:9/x", "-H", "Bad Name: v"], "header"),
        (["http://127.0.0.1:9/x", "--limit", "fast"], "rate"),
        (["http://127.0.0.1:9/x", "--limit", "-1M"], "rate"),
        (["http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "-o", "one.bin"], "one URL"),
        (["http://127.0.0.1:9/x", "--checksum", "sha256=zz"], "hex"),
        (["http://127.0.0.1:9/x", "--checksum", "crc32=abcd"], "algorithm"),
        (["http://127.0.0.1:9/x", "--checksum", "sha256=abcd"], "64"),
        (["http://127.0.0.1:9/x", "-x", "0"], "connections"),
        (["http://127.0.0.1:9/x", "-x", "many"], "invalid int"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(fr, freight_home, args, words):
    before = sorted(os.listdir(freight_home))
    db_before = fr.db.read_bytes()
    res = fr.run(*args, json_out=False)
    assert res.code == 2, res
    assert words.lower() in res.stderr.lower(), res.stderr
    assert not fr.dl.exists()
    assert sorted(os.listdir(freight_home)) == before
    assert fr.db.read_bytes() == db_before


def test_wrong_content_range_is_never_spliced(fr, fault_server):
    # A broken server: every 206 claims a range other than the one asked for.
    data = make_data(300_000, seed=22)
    url = fault_server.add(
        "/liar.bin", data=data, etag="v1", headers={"Content-Range": "bytes 5-300004/300005"}
    )
    res = fr.run(url)
    assert res.code == 1, res
    assert res.record["state"] == "failed"
    assert "liar.bin" not in fr.files()
