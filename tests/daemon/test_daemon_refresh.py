"""A fresh link for a waiting download is accepted only from the same site, for the same file.

A real daemon process against the fault server on 127.0.0.1 (``localhost`` is the same server
seen as another site). A download waits in ``needs_refresh`` with part of its file on disk;
then ``refresh`` (the API, as the extension sends it, and `freight refresh`) offers a new link:
- from another site: refused, nothing changes, the other site is not even asked;
- from the same site, for another size or another strong validator: refused, nothing changes;
- for the same file: accepted, it resumes, the final file is byte-exact;
- when the download has no strong validator, the bytes on disk cannot be shown to be the new
  link's file: accepted, but restarted from zero (never spliced);
- `freight refresh --force` takes another site's link, and restarts from zero, without the
  old site's cookies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from freight import rpc
from freight.errors import FreightError

SIZE = 2 * 1024 * 1024
HELD = 512 * 1024  # what the first response sends before it drops
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


def state(c: Any, download_id: int) -> str:
    return str(c.call("get", id=download_id)["state"])


def waiting_download(
    c: Any, srv: FaultServer, path: str, data: bytes, *, add: dict[str, Any] | None = None,
    **behaviour: Any,
) -> dict[str, Any]:
    """A download of ``path`` that holds part of its file and waits for a fresh link: the link
    expires while the first response streams, and the drop makes the engine ask again."""
    url = srv.add(path, data=data, rate=HELD, expires_at=time.time() + 0.5,
                  drop_after={"times": 1, "bytes": HELD}, **behaviour)
    download_id = c.call("add", url=url, connections=1, **(add or {}))["id"]
    wait_for(lambda: state(c, download_id) == "needs_refresh", timeout=30)
    d = c.call("get", id=download_id)
    assert 0 < d["done"] < len(data), d
    return dict(d)


def refused(c: Any, **params: Any) -> FreightError:
    with pytest.raises(FreightError) as err:
        c.call("refresh", **params)
    assert err.value.data.get("code") == rpc.CODES.get("REFRESH_REFUSED"), err.value.data
    return err.value


def unchanged(c: Any, before: dict[str, Any]) -> None:
    after = c.call("get", id=before["id"])
    assert after["state"] == "needs_refresh"
    assert (after["url"], after["done"], after["size"]) == (
        before["url"], before["done"], before["size"])
    assert Path(after["path"] + ".part").exists()


def completed(c: Any, download_id: int) -> dict[str, Any]:
    wait_for(lambda: state(c, download_id) in ("completed", "failed"), timeout=30)
    d = c.call("get", id=download_id)
    assert d["state"] == "completed", d
    return dict(d)


def test_a_fresh_link_from_another_site_is_refused(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(SIZE, seed=11)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/s.bin?sig=1", data, etag="s1")
        # The very same file, the very same server, but named by another site (localhost):
        # a page elsewhere must not be able to supply the link.
        fault_server.refresh("/s.bin?sig=1", "/s.bin?sig=2", expires_at=None, rate=None)
        elsewhere = fault_server.host_alias_url("/s.bin?sig=2")
        exc = refused(c, id=before["id"], url=elsewhere, referrer="http://localhost/page")
        assert "another site" in str(exc), exc
        unchanged(c, before)
    # Never asked: no request (and no cookie of the download) went to the other site.
    assert fault_server.stats("/s.bin?sig=2").requests == 0


def test_a_fresh_link_to_another_size_is_refused(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(SIZE, seed=12)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/z.bin?sig=1", data, etag="z1")
        other = fault_server.add("/z.bin?sig=2", data=data + b"x", etag="z1")
        exc = refused(c, id=before["id"], url=other)
        assert f"{SIZE + 1:,} bytes" in str(exc) and f"{SIZE:,}" in str(exc), exc
        unchanged(c, before)


@pytest.mark.parametrize("validators", [
    {"etag": "e2"},  # another strong ETag
    {"etag": "e1", "weak_etag": True},  # W/"e1" fails the strong comparison
    {},  # no ETag at all: nothing shows it is the file held
])
def test_a_fresh_link_to_another_version_is_refused(
    daemon: DaemonProcess, fault_server: FaultServer, validators: dict[str, Any]
) -> None:
    data = make_data(SIZE, seed=13)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/e.bin?sig=1", data, etag="e1")
        other = fault_server.add("/e.bin?sig=2", data=make_data(SIZE, seed=14), **validators)
        exc = refused(c, id=before["id"], url=other)
        assert "a different file" in str(exc) and "ETag" in str(exc), exc
        unchanged(c, before)


def test_a_fresh_link_with_another_date_is_refused(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(SIZE, seed=15)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/m.bin?sig=1", data,
                                  last_modified=LAST_MODIFIED)
        other = fault_server.add("/m.bin?sig=2", data=data,
                                 last_modified="Thu, 02 Jan 2025 00:00:00 GMT")
        exc = refused(c, id=before["id"], url=other)
        assert "Last-Modified" in str(exc), exc
        unchanged(c, before)


@pytest.mark.parametrize("validators", [{"etag": "s1"}, {"last_modified": LAST_MODIFIED}])
def test_the_same_file_from_the_same_site_resumes_byte_exact(
    daemon: DaemonProcess, fault_server: FaultServer, validators: dict[str, Any]
) -> None:
    data = make_data(SIZE, seed=16)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/ok.bin?sig=1", data, **validators)
        fresh = fault_server.refresh("/ok.bin?sig=1", "/ok.bin?sig=2", expires_at=None,
                                     rate=None)
        assert c.call("refresh", id=before["id"], url=fresh) == {"id": before["id"]}
        d = completed(c, before["id"])
    assert d["url"] == fresh
    assert Path(d["path"]).read_bytes() == data
    # Resumed: the fresh link served what was missing, the probe's byte and little more.
    assert fault_server.stats("/ok.bin?sig=2").bytes_sent <= SIZE - before["done"] + HELD


@pytest.mark.parametrize("validators", [{}, {"etag": "w1", "weak_etag": True}])
def test_without_a_strong_validator_the_fresh_link_restarts_from_zero(
    daemon: DaemonProcess, fault_server: FaultServer, validators: dict[str, Any]
) -> None:
    data = make_data(SIZE, seed=17)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/nv.bin?sig=1", data, **validators)
        # Same site, same size, but nothing proves the same file: here it is another one.
        new = make_data(SIZE, seed=18)
        fresh = fault_server.add("/nv.bin?sig=2", data=new, **validators)
        assert c.call("refresh", id=before["id"], url=fresh) == {"id": before["id"]}
        d = completed(c, before["id"])
    assert Path(d["path"]).read_bytes() == new  # no stale byte of the old file
    assert fault_server.stats("/nv.bin?sig=2").bytes_sent >= SIZE


def test_freight_refresh_prints_the_refusal_and_exits_non_zero(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(SIZE, seed=19)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/c.bin?sig=1", data, etag="c1")
        fault_server.refresh("/c.bin?sig=1", "/c.bin?sig=2", expires_at=None, rate=None)
        elsewhere = fault_server.host_alias_url("/c.bin?sig=2")
        run = daemon.cli("refresh", str(before["id"]), elsewhere)
        assert run.returncode != 0, run
        assert "another site" in run.stderr and "--force" in run.stderr, run
        assert "refreshed" not in run.stdout, run
        other = fault_server.add("/c.bin?sig=3", data=data[:-1], etag="c1")
        run = daemon.cli("refresh", str(before["id"]), other)
        assert run.returncode != 0 and f"{SIZE - 1:,} bytes" in run.stderr, run
        unchanged(c, before)


def test_freight_refresh_force_takes_another_site_and_restarts_from_zero(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(SIZE, seed=20)
    with daemon.client() as c:
        before = waiting_download(c, fault_server, "/f.bin?sig=1", data, etag="f1",
                                  require_cookie="session=old-site",
                                  add={"cookies": [{"name": "session", "value": "old-site"}]})
        new = make_data(SIZE + 1000, seed=21)
        fault_server.add("/f2.bin", data=new, etag="other")
        elsewhere = fault_server.host_alias_url("/f2.bin")
        run = daemon.cli("refresh", str(before["id"]), elsewhere, "--force")
        assert run.returncode == 0, run
        d = completed(c, before["id"])
    assert Path(d["path"]).read_bytes() == new  # restarted: nothing spliced from the old file
    # The old site's cookie never went to the other site.
    assert all("old-site" not in h.get("cookie", "") for h in fault_server.stats("/f2.bin").headers)
