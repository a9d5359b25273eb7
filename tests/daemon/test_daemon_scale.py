"""10,000 downloads in the database: start time, paged list latency, idle CPU.

A functional test (no timing assertion: CI machines vary); it prints the figures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from daemonproc import DaemonProcess
from freight.models import DownloadState
from freight.store import Store

N = 10_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ten_thousand_downloads(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "home")
    d.paths.ensure()
    store = Store(d.paths.database)
    states = [DownloadState.COMPLETED] * 90 + [DownloadState.PAUSED] * 9 + [DownloadState.FAILED]
    for i in range(N):
        store.add(f"http://127.0.0.1:9/f{i}.bin", str(tmp_path / "dl"), state=states[i % 100],
                  name=f"f{i}.bin", size=i * 1000, done=i * 1000)
    store.close()

    started = time.monotonic()
    d.start()
    start_s = time.monotonic() - started
    try:
        with d.client() as c:
            t = time.monotonic()
            first = c.call("list", limit=500)
            first_ms = (time.monotonic() - t) * 1000
            t = time.monotonic()
            last = c.call("list", offset=N - 500, limit=500)
            last_ms = (time.monotonic() - t) * 1000
            t = time.monotonic()
            paused = c.call("list", states=["paused"], limit=100)
            filtered_ms = (time.monotonic() - t) * 1000
            t = time.monotonic()
            status = c.call("status")
            status_ms = (time.monotonic() - t) * 1000
            cpu0 = cpu_seconds(d.proc.pid)
            time.sleep(3)
            idle_cpu = (cpu_seconds(d.proc.pid) - cpu0) / 3 * 100
        assert first["total"] == N and len(first["downloads"]) == 500
        assert last["downloads"][-1]["name"] == f"f{N - 1}.bin"
        assert paused["total"] == N * 9 // 100
        assert status["completed"] == N * 90 // 100
        print(
            f"\n10k downloads: daemon start {start_s:.2f} s; list page 1 {first_ms:.1f} ms, "
            f"last page {last_ms:.1f} ms, by state {filtered_ms:.1f} ms, status "
            f"{status_ms:.1f} ms; idle CPU {idle_cpu:.1f} %"
        )
    finally:
        d.stop()
