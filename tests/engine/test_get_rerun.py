"""`freight get` run again: a finished file is left alone (as wget -c, curl -C - and aria2c
do), and a download waiting for a fresh link resumes with `freight get FRESH_URL`.

Real `freight get` processes against the fault server, as in test_get.py.
"""

from __future__ import annotations

import signal
import time
from urllib.parse import urlsplit

import pytest
from faultserver import make_data
from freight.cli.get import same_file_link

from .conftest import sha256

MIB = 1024 * 1024


def test_a_finished_download_is_left_alone(fr, fault_server):
    data = make_data(300_000, seed=60)
    url = fault_server.add("/done.bin", data=data, etag="v1")
    assert fr.run(url).code == 0
    fault_server.reset_stats("/done.bin")
    again = fr.run(url, json_out=False)
    assert again.code == 0, again
    assert f"already downloaded: {fr.dl / 'done.bin'}" in again.stderr
    assert fault_server.stats("/done.bin").requests == 0  # nothing fetched
    assert fr.files() == ["done.bin"]
    # --json says it as well, with the record of the download.
    record = fr.run(url).record
    assert record["state"] == "completed" and record["exit_code"] == 0
    assert any("already downloaded" in n for n in record["notices"])


def test_again_downloads_a_new_copy(fr, fault_server):
    data = make_data(200_000, seed=61)
    url = fault_server.add("/copy.bin", data=data, etag="v1")
    assert fr.run(url).code == 0
    res = fr.run(url, "--again")
    assert res.code == 0, res
    assert fr.files() == ["copy (1).bin", "copy.bin"]
    assert sha256((fr.dl / "copy (1).bin").read_bytes()) == sha256(data)


def test_a_finished_file_that_was_deleted_is_downloaded_again(fr, fault_server):
    data = make_data(100_000, seed=62)
    url = fault_server.add("/gone.bin", data=data, etag="v1")
    assert fr.run(url).code == 0
    (fr.dl / "gone.bin").unlink()
    res = fr.run(url)
    assert res.code == 0, res
    assert sha256((fr.dl / "gone.bin").read_bytes()) == sha256(data)


def expired_half_way(fr, fault_server, kill_after, data: bytes) -> tuple[str, int]:
    """A download of a signed URL, interrupted, then refused (403): exit 3."""
    url = fault_server.add("/movie.mkv?sig=old", data=data, etag="v1", rate=256 * 1024)
    proc = fr.start(url, "-x", "2")
    kill_after(proc)
    fr.wait_done(proc, 200_000)
    fr.finish(proc, signal.SIGINT)
    fault_server.add("/movie.mkv?sig=old", data=data, etag="v1", expires_at=time.time() - 1)
    res = fr.run(url, "-x", "2", json_out=False)
    assert res.code == 3, res
    return res.stderr, fr.download().done


def test_a_fresh_link_resumes_the_waiting_download(fr, fault_server, kill_after):
    data = make_data(2 * MIB, seed=63)
    message, kept = expired_half_way(fr, fault_server, kill_after, data)
    # The message says exactly the command that resumes it.
    assert f"freight get -d {fr.dl} FRESH_URL" in message, message
    fresh = fault_server.refresh("/movie.mkv?sig=old", rate=None)
    res = fr.run(fresh, "-x", "2")
    assert res.code == 0, res
    assert res.record["id"] == 1  # the same download, not a new one
    assert fr.files() == ["movie.mkv"]
    assert sha256((fr.dl / "movie.mkv").read_bytes()) == sha256(data)
    target = urlsplit(fresh)
    sent = fault_server.stats(f"{target.path}?{target.query}")
    # Resumed where the data ends, not from zero (and not probed again: no range from 0).
    assert sent.ranges and all(r is not None and r[0] not in (0, None) for r in sent.ranges)
    assert kept > 0


def test_a_link_to_another_file_does_not_adopt_the_waiting_download(
    fr, fault_server, kill_after
):
    data = make_data(1 * MIB, seed=64)
    expired_half_way(fr, fault_server, kill_after, data)
    other = fault_server.add("/other.mkv?sig=x", data=make_data(MIB, seed=65), etag="v9")
    res = fr.run(other)
    assert res.code == 0, res
    assert res.record["id"] == 2
    assert fr.download(1).state == "needs_refresh"  # still waiting for its own link


@pytest.mark.parametrize(("new", "old", "same"), [
    ("https://cdn2.example.com/f.iso?sig=new", "https://dl.example.com/f.iso?sig=old", True),
    ("https://example.com/f.iso", "http://EXAMPLE.com./f.iso", True),
    ("https://a.example.co.uk/f.iso", "https://b.example.co.uk/f.iso", True),
    ("https://a.example.co.uk/f.iso", "https://b.other.co.uk/f.iso", False),
    ("https://evil.com/f.iso", "https://example.com/f.iso", False),
    ("https://example.com/g.iso", "https://example.com/f.iso", False),
    ("http://127.0.0.1:8/f", "http://127.0.0.2:8/f", False),
    ("http://[::1]:8/f?x", "http://[::1]:9/f?y", True),
])
def test_a_fresh_link_is_of_the_same_file_only_from_the_same_site_and_path(new, old, same):
    assert same_file_link(new, old) is same
