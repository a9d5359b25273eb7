"""A real Transfer against a ScriptedSource that misbehaves as servers do: weak validators that
change, ``*`` totals, bodies capped short, 1xx heads, cross-origin redirects, userinfo."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from freight.engine.http.scripted import Request, Rule, ScriptedSource
from freight.models import Download, DownloadState
from freight.store import Store

from .test_scripted_transfer import data_of, on_disk, run

URL = "http://files.test/data.bin"
CDN = "https://cdn.test:8443/blob/data.bin"
SECRETS = {"Cookie": "session=s3cr3t", "Authorization": "Bearer t0ken", "X-Custom": "mine"}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "freight.db")
    yield store
    store.close()


def add(store: Store, tmp_path: Path, url: str = URL, **fields: object) -> Download:
    folder = tmp_path / "dl"
    folder.mkdir(exist_ok=True)
    return store.add(url, str(folder), state=DownloadState.ACTIVE, **fields)


def test_a_weak_etag_that_changes_at_the_same_size_is_never_spliced(
    db: Store, tmp_path: Path
) -> None:
    # A weak ETag cannot go in If-Range (RFC 9110 §13.1.5): the server answers every range
    # with a 206 of whatever version it has. Only comparing the tag on every reply (weak
    # comparison, §8.8.3.2) tells the versions apart.
    old, new = data_of(200_000, seed=1), data_of(200_000, seed=2)
    source = ScriptedSource(old, etag='W/"1"', rules=[
        Rule(match=lambda r: r.start > 0, change=(new, 'W/"2"')),
    ])
    download = add(db, tmp_path)
    transfer = run(db, download, source)
    assert on_disk(db, download) == new
    assert any("changed" in n for n in transfer.notices)
    assert all("If-Range" not in r.headers for r in source.requests)


def test_a_star_total_is_fetched_whole_never_finalised_short(db: Store, tmp_path: Path) -> None:
    # "bytes 0-N/*" (RFC 9110 §14.4: the length is unknown) to the probe: the part is never
    # taken for the file; the whole file is asked for without Range, as curl would.
    data = data_of(300_000)
    source = ScriptedSource(data, rules=[Rule(star=True, cap=50_000, times=None)])
    download = add(db, tmp_path)
    run(db, download, source)
    assert on_disk(db, download) == data
    assert any(not r.ranged and r.status == 200 for r in source.requests)


def test_a_short_206_is_continued_never_finalised(db: Store, tmp_path: Path) -> None:
    # A server that caps every body at 64 KiB, with the true total: each short reply is
    # continued by a new request for the rest.
    data = data_of(400_000)
    source = ScriptedSource(data, rules=[Rule(cap=64 * 1024, times=None)])
    download = add(db, tmp_path)
    run(db, download, source, max_tries=50)
    assert on_disk(db, download) == data
    assert all(r.status == 206 for r in source.requests)


def test_interim_heads_and_429_with_retry_after(db: Store, tmp_path: Path) -> None:
    data = data_of(200_000)
    source = ScriptedSource(data, rules=[
        Rule(match=lambda r: r.start == 0, interim=(100, 103)),
        Rule(match=lambda r: r.start > 0, status=429, times=2, headers={"Retry-After": "0"}),
    ])
    download = add(db, tmp_path)
    run(db, download, source)
    assert on_disk(db, download) == data
    assert source.requests[0].interim == (100, 103)
    assert [r.status for r in source.requests].count(429) == 2


def _cdn_saw_nothing(requests: list[Request]) -> None:
    for request in requests:
        if request.origin != "http://files.test:80":
            sent = {k.lower() for k in request.headers}
            assert not sent & {"cookie", "authorization", "x-custom"}, request
            assert all("s3cr3t" not in v and "t0ken" not in v for v in request.headers.values())


def test_secrets_never_follow_a_cross_origin_redirect(db: Store, tmp_path: Path) -> None:
    data = data_of(300_000)
    source = ScriptedSource(data, rules=[
        Rule(match=lambda r: r.origin == "http://files.test:80", redirect=CDN, times=None),
    ])
    download = add(db, tmp_path, headers=SECRETS)
    run(db, download, source)
    assert on_disk(db, download) == data
    assert db.get(download.id).final_url == CDN
    at_cdn = [r for r in source.requests if r.origin == "https://cdn.test:8443"]
    assert len(at_cdn) > 1 and any(r.start > 0 for r in at_cdn)  # the probe and the ranges
    first = source.requests[0]
    assert first.origin == "http://files.test:80"
    assert {k: first.headers[k] for k in SECRETS} == SECRETS
    _cdn_saw_nothing(source.requests)


def test_userinfo_is_basic_auth_for_its_origin_only(db: Store, tmp_path: Path) -> None:
    data = data_of(300_000)
    basic = "Basic " + base64.b64encode(b"al ice:p@ss:w").decode()

    def locked(r: Request) -> bool:  # the origin answers 401 without the credential
        return r.origin == "http://files.test:80" and r.headers.get("Authorization") != basic

    source = ScriptedSource(data, rules=[Rule(match=locked, status=401, times=None)])
    download = add(db, tmp_path, url="http://al%20ice:p%40ss:w@files.test/data.bin")
    run(db, download, source)
    assert on_disk(db, download) == data
    assert all(r.headers.get("Authorization") == basic for r in source.requests)
    assert len(source.requests) > 1
    assert "p%40ss" not in (db.get(download.id).final_url or "")

    # Behind a redirect to a CDN, the credential stays with its origin.
    other = ScriptedSource(data, rules=[
        Rule(match=locked, status=401, times=None),
        Rule(match=lambda r: r.origin == "http://files.test:80", redirect=CDN, times=None),
    ])
    again = add(db, tmp_path, url="http://al%20ice:p%40ss:w@files.test/data.bin")
    run(db, again, other)
    assert on_disk(db, again) == data
    assert other.requests[0].headers.get("Authorization") == basic
    assert all("Authorization" not in r.headers for r in other.requests[1:])


def test_redirect_loops_and_bad_targets_fail_clearly(db: Store, tmp_path: Path) -> None:
    loop = ScriptedSource(b"x" * 1000, rules=[
        Rule(match=lambda r: r.url == URL, redirect="/b", times=None),
        Rule(match=lambda r: r.url.endswith("/b"), redirect=URL, times=None),
    ])
    download = add(db, tmp_path)
    run(db, download, loop)
    failed = db.get(download.id)
    assert failed.state is DownloadState.FAILED and "loop" in (failed.error or "")
    bad = ScriptedSource(b"x", rules=[Rule(redirect="ftp://files.test/x", times=None)])
    again = add(db, tmp_path)
    run(db, again, bad)
    assert "unsupported scheme" in (db.get(again.id).error or "")
