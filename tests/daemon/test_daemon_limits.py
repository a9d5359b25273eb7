"""The daemon's speed limits slow real transfers down (issues 2 and 3).

Only lower bounds on elapsed time are asserted: a token bucket of ``rate`` with ``burst``
lets at most ``burst + rate * t`` bytes through in any t seconds, whatever the machine, so
"not sooner than" cannot flake on a slow machine. The accuracy (within 10 %) is measured in
bench/limits.py, not here.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data
from freight.engine.limits import RateLimiter

KIB = 1024
MIB = 1024 * KIB
#: The most one connection may have reserved (read, paid for) but not yet counted in ``done``
#: when a limit changes: one read of the default ``read_size``.
READ_SIZE = 256 * KIB


def test_global_limit_holds_three_downloads_back(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    rate = 512 * KIB
    files = [make_data(512 * KIB, seed=n) for n in range(3)]
    urls = [fault_server.add(f"/g{n}.bin", data=d, etag=f"g{n}") for n, d in enumerate(files)]
    with daemon.client() as c:
        assert c.call("set_limits", global_limit=rate)["global_limit"] == rate
        assert c.call("status")["global_limit"] == rate
        started = time.monotonic()  # no byte of them has passed the bucket yet
        ids = [
            c.call("add", url=u, checksum="sha256:" + hashlib.sha256(d).hexdigest())["id"]
            for u, d in zip(urls, files, strict=True)
        ]
        wait_for(
            lambda: all(c.call("get", id=i)["state"] in ("completed", "failed") for i in ids),
            timeout=12,
        )
        elapsed = time.monotonic() - started
        rows = [c.call("get", id=i) for i in ids]
    assert [r["state"] for r in rows] == ["completed"] * 3, [r["error"] for r in rows]
    for r, data in zip(rows, files, strict=True):
        body = Path(r["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    # From `started` on, at most burst + rate * t bytes can pass the shared bucket.
    burst = RateLimiter._burst(rate)
    bound = (sum(map(len, files)) - burst) / rate
    assert elapsed >= bound, f"3 x 512 KiB at a global 512 KiB/s took {elapsed:.2f} s < {bound:.2f}"


def test_limit_set_while_running_slows_it(
    daemon: DaemonProcess, fault_server: FaultServer
) -> None:
    data = make_data(3 * MIB, seed=7)
    # The server sends 1 MiB/s per connection: without a limit the rest takes < 3 s.
    url = fault_server.add("/slow.bin", data=data, etag="s1", rate=1 * MIB)
    limit = 512 * KIB
    with daemon.client() as c:
        download_id = c.call("add", url=url, connections=1)["id"]
        wait_for(lambda: (c.call("get", id=download_id)["done"] or 0) >= 256 * KIB, timeout=10)
        c.call("set_limits", id=download_id, limit=limit)
        row = c.call("get", id=download_id)
        started = time.monotonic()
        assert row["limit"] == limit
        assert row["state"] == "active", "the download ended before the limit could be tested"
        rest = len(data) - row["done"]
        connections = max(1, row["connections"] or 1)
        wait_for(lambda: c.call("get", id=download_id)["state"] == "completed", timeout=12)
        elapsed = time.monotonic() - started
        final = c.call("get", id=download_id)
    assert Path(final["path"]).read_bytes() == data
    # The new bucket starts full (burst), and each connection may hold one read it has paid
    # for at the old (unlimited) rate but not yet counted.
    bound = (rest - RateLimiter._burst(limit) - connections * READ_SIZE) / limit
    assert bound > rest / MIB, "the test would not tell a limited run from an unlimited one"
    assert elapsed >= bound, f"{rest} bytes at 512 KiB/s took {elapsed:.2f} s < {bound:.2f}"
