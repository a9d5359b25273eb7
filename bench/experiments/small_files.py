"""S4's small files, taken apart (bench/PROFILE.md §8): through a real daemon, or on one event
loop without the daemon.

    .venv/bin/python bench/experiments/small_files.py --files 500 [--max-small 32]
    .venv/bin/python bench/experiments/small_files.py --files 500 --in-process

``--daemon`` (the default): a daemon with FREIGHT_HOME and the files in /dev/shm,
``bench/server.py --size 100K --latency 0.02``, ``freight add --json`` of the URLs, then
``freight wait``; prints the wall time from the add's spawn to the wait's exit, when the
rows existed and the files completed (from the database), and the daemon's CPU over the
window (from /proc). ``--in-process``: the same files as ``QuickTransfer`` runs on one loop,
``--at-once`` of them at a time, with the CPU of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FREIGHT = [sys.executable, "-m", "freight"]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server(work: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "server.py"), "--port", "0", "--size", "100K",
         "--latency", "0.02"], stdout=subprocess.PIPE, text=True, cwd=work)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())["port"]


def through_the_daemon(files: int, max_small: int | None) -> None:
    work = Path(tempfile.mkdtemp(dir="/dev/shm"))
    env = {**os.environ, "FREIGHT_HOME": str(work / "home")}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    srv, port = server(work)
    daemon = subprocess.Popen([*FREIGHT, "daemon", "--no-tray", "--port", "0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (work / "home" / "state" / "daemon.json").exists():
            time.sleep(0.02)
        if max_small is not None:
            subprocess.run([*FREIGHT, "settings", "max_small", str(max_small)], env=env,
                           check=True, capture_output=True)
        urls = [f"http://127.0.0.1:{port}/f{i:04d}.bin" for i in range(files)]
        cpu0, began, wall0 = cpu_of(daemon.pid), time.perf_counter(), time.time()
        added = subprocess.run([*FREIGHT, "add", "--json", "-d", str(work / "out"), *urls],
                               env=env, check=True, capture_output=True, text=True)
        ids = [str(i) for i in json.loads(added.stdout)["ids"]]
        subprocess.run([*FREIGHT, "wait", *ids], env=env, check=True, capture_output=True)
        wall, cpu = time.perf_counter() - began, cpu_of(daemon.pid) - cpu0
        db = sqlite3.connect(work / "home" / "freight.db")
        created, first, last = db.execute(
            "SELECT min(created_at), min(finished_at), max(finished_at) FROM downloads"
        ).fetchone()
        print(f"{files} files: wall {wall:.3f} s; rows at +{created - wall0:.3f} s, first "
              f"done +{first - wall0:.3f} s, last +{last - wall0:.3f} s; daemon CPU "
              f"{cpu:.2f} s = {1000 * cpu / files:.2f} ms per file")
    finally:
        daemon.terminate()
        daemon.wait(30)
        srv.terminate()
        shutil.rmtree(work, ignore_errors=True)


def in_process(files: int, at_once: int) -> None:
    sys.path[:0] = [str(ROOT / "tests" / "engine"), str(ROOT / "tests")]
    from freight.config import EngineSettings
    from freight.models import DownloadState
    from freight.store import Store
    from quick_support import Loop  # the scheduler's pool and finisher, as the tests use them

    work = Path(tempfile.mkdtemp(dir="/dev/shm"))
    srv, port = server(work)
    store = Store(work / "freight.db")
    loop = Loop(store, EngineSettings())
    rows = [store.add(f"http://127.0.0.1:{port}/f{i}.bin", str(work / "out"),
                      state=DownloadState.ACTIVE) for i in range(files)]

    async def all_of_them() -> float:
        gate = asyncio.Semaphore(at_once)

        async def one(row: object) -> object:
            async with gate:
                return await loop.quick(row).run()  # type: ignore[arg-type]

        began = time.perf_counter()
        await asyncio.gather(*(one(r) for r in rows))
        return time.perf_counter() - began

    try:
        cpu0 = time.process_time()
        wall = asyncio.run_coroutine_threadsafe(all_of_them(), loop.loop).result()
        cpu = time.process_time() - cpu0
        print(f"{files} files, {at_once} at once: {wall:.3f} s; CPU {cpu:.2f} s = "
              f"{1000 * cpu / files:.2f} ms per file")
    finally:
        loop.close()
        store.close()
        srv.terminate()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=500)
    p.add_argument("--max-small", type=int, help="the daemon's max_small (default: its own)")
    p.add_argument("--in-process", action="store_true")
    p.add_argument("--at-once", type=int, default=32, help="--in-process: files at once")
    args = p.parse_args()
    if args.in_process:
        in_process(args.files, args.at_once)
    else:
        through_the_daemon(args.files, args.max_small)
    return 0


if __name__ == "__main__":
    sys.exit(main())
