"""`freight get http://user:pass@host/file`: the userinfo is taken out where the URL enters
(freight.cli.get) and stored sealed as the download's Authorization: Basic (RFC 7617); the
stored URL is the clean one, and the password is in nothing Freight stores, prints or logs.

Real `freight get` processes against the fault server, as in test_get.py."""

from __future__ import annotations

import base64
import signal
import sqlite3
from pathlib import Path

from faultserver import make_data

from .conftest import sha256

USER, PASSWORD = "alice", "s3cr\u00e9t-pw"  # percent-decoded, UTF-8 (RFC 7617 §2.1)
QUOTED = "s3cr%C3%A9t-pw"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TOKEN = BASIC[6:]


def with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{QUOTED}@", 1)


def assert_nowhere(home: Path, *texts: str) -> None:
    """No file under FREIGHT_HOME but the secrets' own holds any of ``texts`` in clear:
    the database (and its WAL), the log file."""
    for path in home.rglob("*"):
        if not path.is_file() or "secrets" in path.parts:
            continue
        data = path.read_bytes()
        for text in texts:
            assert text.encode() not in data, f"{text!r} in {path}"


def stored_urls(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT url, final_url FROM downloads"))


def test_userinfo_is_sent_as_basic_but_never_stored_or_shown(fr, fault_server):
    data = make_data(300_000, seed=71)
    url = fault_server.add("/private.bin", data=data, etag="v1",
                           require_header=("Authorization", BASIC))
    res = fr.run(with_userinfo(url))
    assert res.code == 0, res
    assert sha256((fr.dl / "private.bin").read_bytes()) == sha256(data)
    assert res.record["url"] == url  # the clean URL
    for text in (PASSWORD, QUOTED, TOKEN):
        assert text not in res.stdout + res.stderr
    assert stored_urls(fr.db)[0][0] == url
    assert_nowhere(fr.home, PASSWORD, QUOTED, TOKEN, f"{USER}:")
    assert any(fr.home.rglob("*.log"))  # the log file was read too
    # Without a terminal the messages are plain text: the same holds for them.
    again = fr.run(with_userinfo(url), json_out=False)
    assert again.code == 0, again
    assert "already downloaded" in again.stderr  # found: the clean URL compared to the clean
    assert QUOTED not in again.stderr and PASSWORD not in again.stderr


def test_run_again_with_the_same_credentials_resumes(fr, fault_server, kill_after):
    data = make_data(2 * 1024 * 1024, seed=72)
    url = fault_server.add("/big.bin", data=data, etag="v1", rate=256 * 1024,
                           require_header=("Authorization", BASIC))
    proc = fr.start(with_userinfo(url), "-x", "2")
    kill_after(proc)
    fr.wait_done(proc, 200_000)
    fr.finish(proc, signal.SIGINT)
    assert stored_urls(fr.db)[0][0] == url
    fault_server.add("/big.bin", data=data, etag="v1", require_header=("Authorization", BASIC))
    res = fr.run(with_userinfo(url), "-x", "2")
    assert res.code == 0, res
    assert res.record["id"] == 1  # the same download, resumed
    assert fr.files() == ["big.bin"]
    assert sha256((fr.dl / "big.bin").read_bytes()) == sha256(data)
    assert_nowhere(fr.home, PASSWORD, QUOTED, TOKEN)


def test_an_explicit_authorization_header_wins(fr, fault_server):
    data = make_data(100_000, seed=73)
    url = fault_server.add("/tok.bin", data=data, etag="v1",
                           require_header=("Authorization", "Bearer tok"))
    res = fr.run(with_userinfo(url), "-H", "Authorization: Bearer tok")
    assert res.code == 0, res
    assert all(h.get("authorization") == "Bearer tok"
               for h in fault_server.stats("/tok.bin").headers)
    assert_nowhere(fr.home, PASSWORD, QUOTED, TOKEN, "Bearer tok")


def test_the_stored_basic_stays_with_its_origin_across_a_redirect(
    fr, fault_server, other_fault_server
):
    data = make_data(400_000, seed=74)
    target = other_fault_server.add("/cdn.bin", data=data, etag="v1")
    url = fault_server.add("/go.bin", redirect_to=target,
                           require_header=("Authorization", BASIC))
    res = fr.run(with_userinfo(url), "-x", "4")
    assert res.code == 0, res
    assert sha256((fr.dl / "cdn.bin").read_bytes()) == sha256(data)
    assert all(h.get("authorization") == BASIC for h in fault_server.stats("/go.bin").headers)
    seen = other_fault_server.stats("/cdn.bin").headers
    assert seen and not any("authorization" in h for h in seen)  # the second origin: never
    assert stored_urls(fr.db)[0][0] == url
