"""Scale: a daemon with 10,000 downloads in its database; `freight add` of 1,000 URLs, idle CPU.

    .venv/bin/python bench/scale.py            # about 1 minute; writes bench/scale-daemon.json
    .venv/bin/python bench/scale.py --quick    # 2,000 downloads, 200 URLs, shorter windows

The database (a real SQLite file in a temporary FREIGHT_HOME on the disk, not tmpfs) is filled
before the daemon starts, like a long history: 88 % completed, 6 % paused, 3 % failed, 1 %
needs_refresh and 2 % queued. Every queued download points at ``bench/server.py`` throttled to
2 KiB/s per connection (one connection each), so the ``max_active`` (3, the default) that
start hold their slots for the whole run and every other queued download, including the ones
`freight add` queues, waits (``max_small`` is 0: the small lane would try each of unknown
size at once): the queue is full and busy, as with a real backlog, and nothing is fetched in
bulk while the figures are taken.

Then, against the real daemon (``python -m freight daemon --no-tray --port 0``):

(a) ``freight add URL x 1000``, one process, spawn to exit as a user sees it (median of
    ``--repeat`` runs, each adding 1,000 more), its CPU (``os.wait4``) and the daemon's CPU
    over the same time (``/proc/PID/stat``); for scale, the floor of a ``freight --version``
    process;
(b) the daemon's CPU % and context switches per second (all its threads, ``/proc``) over
    ``--idle`` seconds: once with the three slow downloads running and the rest queued, once
    after ``pause_all`` (nothing running, every download present);
(c) ``list`` latency, first page and last page (500 rows each, the default page) and
    ``status`` (median of 5 calls each, over one authenticated connection).

The code measured is this tree's (``daemon/`` is put first on the children's PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT / "tests" / "daemon")]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT / "daemon"), *filter(None, [os.environ.get("PYTHONPATH")])]
)

from daemonproc import DaemonProcess, wait_for  # noqa: E402
from freight.models import DownloadState  # noqa: E402
from freight.store import Store  # noqa: E402

S = DownloadState
TICK = os.sysconf("SC_CLK_TCK")
#: Per 100 downloads of history.
MIX = [S.COMPLETED] * 88 + [S.PAUSED] * 6 + [S.FAILED] * 3 + [S.NEEDS_REFRESH] + [S.QUEUED] * 2


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "--port", "0", "--size", "16M",
         "--rate", "2K"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{info['port']}"


def fill(daemon: DaemonProcess, count: int, base: str, folder: str) -> dict[str, int]:
    daemon.paths.ensure()
    store = Store(daemon.paths.database)
    states: dict[str, int] = {}
    try:
        # No small lane: it would try every queued download of unknown size at once (one
        # request each, engine/quick.py), and the queue is meant to hold here.
        store.set_settings({"max_small": 0})
        for i in range(count):
            state = MIX[i % len(MIX)]
            states[state.value] = states.get(state.value, 0) + 1
            if state is S.QUEUED:
                store.add(f"{base}/q{i}.bin", folder, state=state, connections=1)
                continue
            size = 1000 + i * 997
            store.add(
                f"https://files.example/history/f{i}.bin", folder, state=state,
                name=f"f{i}.bin", size=size,
                done=size if state is S.COMPLETED else size // 3,
                error="HTTP 404" if state is S.FAILED else None,
                error_kind="http" if state is S.FAILED else None,
            )
    finally:
        store.close()
    return states


# -- CPU of a process -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def switches(pid: int) -> int:
    """Context switches of every thread of ``pid`` (voluntary + not): how often it woke."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            continue  # a thread that ended meanwhile
    return total


def idle(pid: int, seconds: float) -> dict[str, float]:
    cpu0, sw0, t0 = cpu_seconds(pid), switches(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, sw1, t1 = cpu_seconds(pid), switches(pid), time.monotonic()
    return {"cpu_percent": round((cpu1 - cpu0) / (t1 - t0) * 100, 2),
            "wakeups_per_s": round((sw1 - sw0) / (t1 - t0), 1), "seconds": round(t1 - t0, 1)}


# -- measurements ------------------------------------------------------------------------------


def timed(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``argv``; wall time spawn to exit and the child's own CPU (os.wait4)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "code": proc.returncode,
            "stdout": out.decode(), "stderr": err.decode()}


def bench_add(daemon: DaemonProcess, base: str, urls: int, repeat: int) -> dict[str, Any]:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    command = [sys.executable, "-m", "freight"]
    floor = [timed([*command, "--version"], daemon.env)["wall"] for _ in range(3)]
    runs = []
    for r in range(repeat):
        argv = [*command, "add", *(f"{base}/a{r}-{i}.bin" for i in range(urls))]
        cpu0 = cpu_seconds(pid)
        run = timed(argv, daemon.env)
        daemon_cpu = cpu_seconds(pid) - cpu0
        lines = run["stdout"].splitlines()
        if run["code"] != 0 or len(lines) != urls:
            raise RuntimeError(f"freight add failed ({run['code']}, {len(lines)} lines): "
                               f"{run['stderr'][-2000:]}")
        runs.append({"wall_s": round(run["wall"], 3), "cli_cpu_s": round(run["cpu"], 3),
                     "daemon_cpu_s": round(daemon_cpu, 3)})
    return {
        "urls": urls,
        "runs": runs,
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cli_cpu_s": statistics.median(r["cli_cpu_s"] for r in runs),
        "daemon_cpu_s": statistics.median(r["daemon_cpu_s"] for r in runs),
        "startup_floor_s": round(statistics.median(floor), 3),
    }


def latency_ms(call: Any, times: int = 5) -> float:
    samples = []
    for _ in range(times):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 2)


def bench_reads(client: Any) -> dict[str, Any]:
    total = client.call("list", limit=1)["total"]
    last = client.call("list", offset=max(0, total - 500))
    if not last["downloads"]:
        raise RuntimeError("the last page is empty")
    return {
        "total": total,
        "list_first_page_ms": latency_ms(lambda: client.call("list")),
        "list_last_page_ms": latency_ms(lambda: client.call("list", offset=max(0, total - 500))),
        "status_ms": latency_ms(lambda: client.call("status")),
    }


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "load": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "kernel": platform.release()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 downloads, 200 URLs")
    parser.add_argument("--downloads", type=int, help="in the database (default 10,000)")
    parser.add_argument("--urls", type=int, help="given to one freight add (default 1,000)")
    parser.add_argument("--repeat", type=int, default=3, help="freight add runs (median)")
    parser.add_argument("--idle", type=float, help="seconds of each idle window (default 5)")
    parser.add_argument("--json", default=str(HERE / "scale-daemon.json"))
    args = parser.parse_args()
    downloads = args.downloads or (2_000 if args.quick else 10_000)
    urls = args.urls or (200 if args.quick else 1_000)
    idle_s = args.idle or (2.0 if args.quick else 5.0)

    scratch = Path(tempfile.mkdtemp(prefix="freight-scale-"))
    server, base = start_server()
    daemon = DaemonProcess(scratch / "home")
    try:
        t0 = time.monotonic()
        states = fill(daemon, downloads, base, str(scratch / "downloads"))
        fill_s = time.monotonic() - t0
        t0 = time.monotonic()
        daemon.start()
        start_s = time.monotonic() - t0
        assert daemon.proc is not None
        with daemon.client() as client:
            wait_for(lambda: client.call("status")["active"] == 3, timeout=30)
            time.sleep(1.0)  # the three probes answered; they now trickle at 2 KiB/s
            add = bench_add(daemon, base, urls, args.repeat)
            reads = bench_reads(client)
            status = client.call("status")
            if status["active"] != 3:
                raise RuntimeError(f"expected 3 running, got {status['active']}")
            time.sleep(1.0)
            busy = idle(daemon.proc.pid, idle_s)
            client.call("pause_all")
            wait_for(lambda: client.call("status")["active"] == 0, timeout=30)
        time.sleep(1.0)  # the client's connection closed too: nobody is connected
        quiet = idle(daemon.proc.pid, idle_s)
    finally:
        code = daemon.stop() if daemon.proc is not None else None
        server.terminate()
        server.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)

    report = {
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, "bench/scale.py", *sys.argv[1:]]),
        "database": {"downloads": downloads, "states": states, "fill_s": round(fill_s, 2),
                     "filesystem": "the disk (tempfile.mkdtemp)"},
        "daemon_start_s": round(start_s, 2),
        "add": add,
        "reads": reads,
        "idle_three_running": busy,
        "idle_nothing_running": quiet,
        "daemon_exit_code": code,
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    print(f"{downloads:,} downloads in the database; {m['cores']} cores, load {m['load']}, "
          f"Python {m['python']}")
    rows = [
        (f"freight add, {urls:,} URLs (wall, median of {args.repeat})", f"{add['wall_s']:.3f} s"),
        ("  its CPU / the daemon's CPU meanwhile",
         f"{add['cli_cpu_s']:.3f} s / {add['daemon_cpu_s']:.3f} s"),
        ("  floor: freight --version", f"{add['startup_floor_s']:.3f} s"),
        (f"list, first page of {reads['total']:,}", f"{reads['list_first_page_ms']:.1f} ms"),
        ("list, last page", f"{reads['list_last_page_ms']:.1f} ms"),
        ("status", f"{reads['status_ms']:.1f} ms"),
        ("daemon CPU, 3 slow downloads running",
         f"{busy['cpu_percent']:.2f} % ({busy['wakeups_per_s']:.0f} switches/s)"),
        ("daemon CPU, nothing running",
         f"{quiet['cpu_percent']:.2f} % ({quiet['wakeups_per_s']:.0f} switches/s)"),
    ]
    width = max(len(r[0]) for r in rows)
    for what, value in rows:
        print(f"{what:<{width}}  {value}")
    print(f"(written to {args.json})")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
