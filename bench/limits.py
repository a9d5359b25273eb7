"""Measure the speed limits (issues 2 and 3): are they within 10 % over ~10 s?

    .venv/bin/python bench/limits.py            # about 1 minute; prints a markdown table

Three measurements, against ``bench/server.py`` unthrottled on 127.0.0.1, everything in
/dev/shm:

1. ``freight get URL --limit 2M --json``: the whole run (size / elapsed, as ``--json``
   reports it) and the middle 10 s window, sampled from the progress the transfer records in
   its SQLite file (``fast_progress``/``downloads.done``) every 0.2 s.
2. A real daemon with a global limit of 3M and three downloads at once: each and the sum over
   a 10 s window, sampled with the API's ``list`` (``done`` is live) every 0.5 s.
3. The same daemon without a global limit, two downloads limited to 1M and 512K.

The window starts after 2 s, so the burst of a fresh bucket (a fifth of a second of traffic)
and the connection start are outside it; the whole-run number of (1) includes both.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "daemon"))  # the real-daemon helper

from daemonproc import DaemonProcess, daemon_env  # noqa: E402
from freight import config  # noqa: E402

MIB = 1024 * 1024
KIB = 1024
WARMUP = 2.0
WINDOW = 10.0
CONTENT = "/dev/shm/freight-limits-content"


def start_server(size: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "--port", "0", "--size", size,
         "--content-dir", CONTENT],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{info['port']}"


def window_rate(samples: list[tuple[float, int]], start: float) -> float:
    """Bytes/s between the first sample at or after ``start`` and the last one within
    ``WINDOW`` seconds of it."""
    inside = [s for s in samples if s[0] >= start]
    first = inside[0]
    last = [s for s in inside if s[0] - first[0] <= WINDOW][-1]
    return (last[1] - first[1]) / (last[0] - first[0])


def row(what: str, limit: float, rate: float, judged: bool = True) -> dict[str, object]:
    """``judged=False``: a fair share, shown for information; the global limit promises the
    sum, not an equal split (the bucket serves whichever connection reads first)."""
    return {"what": what, "limit": limit, "rate": rate, "error": (rate - limit) / limit * 100,
            "judged": judged}


# --- 1. freight get --limit 2M ------------------------------------------------------------


def bench_get(base: str, scratch: Path) -> list[dict[str, object]]:
    home = scratch / "get"
    env = daemon_env(home)
    db = config.paths_from_env(env).database
    proc = subprocess.Popen(
        [sys.executable, "-m", "freight", "get", base + "/get.bin", "--limit", "2M", "--json",
         "-d", str(home / "downloads")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    t0 = time.monotonic()
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                done = conn.execute(
                    "SELECT max(coalesce((SELECT max(done) FROM fast_progress), 0),"
                    " coalesce((SELECT max(done) FROM downloads), 0))"
                ).fetchone()[0]
            samples.append((time.monotonic() - t0, int(done)))
        except sqlite3.Error:
            pass  # not created yet, or busy: skip this sample
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"freight get failed ({proc.returncode}): {err[-2000:]}")
    record = json.loads(out.strip().splitlines()[-1])
    total = samples[-1][0]
    middle = window_rate(samples, max(WARMUP, (total - WINDOW) / 2))
    return [
        row(f"`freight get --limit 2M`, whole run ({record['elapsed']:.1f} s, with start-up)",
            2 * MIB, record["speed"]),
        row("`freight get --limit 2M`, middle 10 s", 2 * MIB, middle),
    ]


# --- 2. and 3. the daemon -----------------------------------------------------------------


def sample_daemon(
    client, ids: list[int], conns: dict[int, int] | None = None  # noqa: ANN001
) -> dict[int, list[tuple[float, int]]]:
    t0 = time.monotonic()
    series: dict[int, list[tuple[float, int]]] = {i: [] for i in ids}
    conns = {} if conns is None else conns
    while time.monotonic() - t0 < WARMUP + WINDOW + 0.6:
        now = time.monotonic() - t0
        for d in client.call("list")["downloads"]:
            if d["id"] in series:
                series[d["id"]].append((now, d["done"] or 0))
                conns[d["id"]] = max(conns.get(d["id"], 0), d["connections"] or 0)
        time.sleep(0.5)
    return series


def bench_daemon(base: str, scratch: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    daemon = DaemonProcess(scratch / "daemon").start()
    try:
        client = daemon.client()
        folder = str(scratch / "daemon" / "downloads")
        client.call("set_limits", global_limit=3 * MIB)
        ids = [client.call("add", url=f"{base}/g{i}.bin", dir=folder)["id"] for i in range(3)]
        conns: dict[int, int] = {}
        series = sample_daemon(client, ids, conns)
        for n, i in enumerate(ids):
            rows.append(row(f"daemon, global 3M, download {n + 1} of 3 vs a fair third "
                            f"(up to {conns[i]} connections; information)",
                            MIB, window_rate(series[i], WARMUP), judged=False))
        total = sum(window_rate(series[i], WARMUP) for i in ids)
        rows.append(row("daemon, global 3M, sum of the 3", 3 * MIB, total))
        for i in ids:
            client.call("remove", id=i)

        client.call("set_limits", global_limit=None)
        limits = [MIB, 512 * KIB]
        ids = [
            client.call("add", url=f"{base}/p{n}.bin", dir=folder, limit=lim)["id"]
            for n, lim in enumerate(limits)
        ]
        series = sample_daemon(client, ids)
        for i, lim in zip(ids, limits, strict=True):
            name = "1M" if lim == MIB else "512K"
            rows.append(row(f"daemon, no global, per-download {name}", lim,
                            window_rate(series[i], WARMUP)))
        for i in ids:
            client.call("remove", id=i)
        client.close()
    finally:
        daemon.stop()
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        "## Speed limits",
        "",
        f"Machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), "
        f"Python {platform.python_version()}. Command: `.venv/bin/python bench/limits.py`; "
        "server `bench/server.py` unthrottled on 127.0.0.1, files in /dev/shm. Windows are "
        f"{WINDOW:.0f} s, starting {WARMUP:.0f} s after the start; pass: within 10 %.",
        "",
        "| measurement | limit (KiB/s) | measured (KiB/s) | error | within 10 % |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        ok = "yes" if abs(float(r["error"])) <= 10 else "**no**"  # type: ignore[arg-type]
        ok = ok if r["judged"] else "(not a limit)"
        lines.append(
            f"| {r['what']} | {float(r['limit']) / KIB:.0f} | "  # type: ignore[arg-type]
            f"{float(r['rate']) / KIB:.0f} | {float(r['error']):+.1f} % | {ok} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="freight-limits-", dir="/dev/shm"))
    server, base = start_server("24M")
    try:
        rows = bench_get(base, scratch) + bench_daemon(base, scratch)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)
    print(markdown(rows))
    judged = [r for r in rows if r["judged"]]
    return 0 if all(abs(float(r["error"])) <= 10 for r in judged) else 1  # type: ignore[arg-type]


if __name__ == "__main__":
    raise SystemExit(main())
