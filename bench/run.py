"""Freight against the download tools people would otherwise use, on one throttled local server.

``make bench`` runs ``.venv/bin/python bench/run.py``; ``--quick`` for a small fast run,
``--scenario S2`` (repeatable) to pick scenarios, ``--runs N`` for the number of runs whose
median is reported, ``--tools freight-16,aria2c`` to run only some tools.

Every tool runs as its own process, one after another (tools interleaved within each round, so
that drift of the machine hits all of them alike), writing into /dev/shm (ext4 write time varies
by seconds from run to run on these machines). Each run's output is checked against the
server's sha256. CPU seconds and peak RSS come from the kernel's accounting of the child
(``os.wait4``). Throughput is the file size over the wall time from spawn to exit, start-up
included, for every tool alike.

Writes bench/RESULTS.md (tables, machine, exact commands) and bench/results.json (raw runs).
Units are binary throughout: MiB/s, CPU seconds per GiB, MiB.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER = HERE / "server.py"
SHM = Path("/dev/shm")
KIB, MIB, GIB = 1024, 1024**2, 1024**3
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def freight_bin() -> str:
    """The venv's `freight` (the one `make bench` built), else the one beside this Python."""
    for candidate in (ROOT / ".venv/bin/freight", Path(sys.executable).parent / "freight"):
        if candidate.exists():
            return str(candidate)
    return "freight"


# --- scenarios and tools -------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    size: int  # bytes per file
    rate: int = 0  # per connection, bytes/s
    link: int = 0  # shared, bytes/s
    latency: float = 0.0
    files: int = 1
    ideal: float | None = None  # MiB/s with 16 connections, when the server sets a ceiling
    kind: str = "speed"  # speed | many | resume

    def server_args(self) -> list[str]:
        return [
            "--size", str(self.size), "--rate", str(self.rate), "--link", str(self.link),
            "--latency", str(self.latency),
        ]


def scenarios(quick: bool) -> dict[str, Scenario]:
    q = quick
    return {
        s.key: s
        for s in [
            Scenario("S1", "raw loopback, unthrottled", 256 * MIB if q else GIB),
            Scenario("S2", "8 MiB/s per connection, 200 MiB/s link", (64 if q else 256) * MIB,
                     rate=8 * MIB, link=200 * MIB, ideal=128.0),
            Scenario("S3", "100 ms first-byte latency, 4 MiB/s per connection",
                     (32 if q else 64) * MIB, rate=4 * MIB, latency=0.1, ideal=64.0),
            Scenario("S4", "many small files, 20 ms first-byte latency", 100 * KIB,
                     latency=0.02, files=100 if q else 500, kind="many"),
            Scenario("S5", "resume after SIGKILL at 50 % (8 MiB/s per conn, 200 MiB/s link)",
                     (64 if q else 256) * MIB, rate=8 * MIB, link=200 * MIB, kind="resume"),
        ]
    }


@dataclass(frozen=True)
class Tool:
    name: str
    label: str
    #: (urls, out_dir, list_file) → argv. One URL except in S4.
    argv: Callable[[list[str], Path, Path], list[str]]
    freight: bool = False
    #: argv for the second, resuming run of S5 (default: the same command).
    resume_argv: Callable[[list[str], Path, Path], list[str]] | None = None


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def single_tools() -> list[Tool]:
    fr = freight_bin()
    return [
        Tool("aria2c", "aria2c -x16 -s16 -k1M",
             lambda u, d, _: ["aria2c", "-q", "-x16", "-s16", "-k1M", "-d", str(d),
                              "-o", _name(u[0]), u[0]]),
        Tool("axel", "axel -n 16", lambda u, d, _: ["axel", "-q", "-n", "16", "-o",
                                                   str(d / _name(u[0])), u[0]]),
        Tool("curl", "curl", lambda u, d, _: ["curl", "-sSf", "-o", str(d / _name(u[0])), u[0]],
             resume_argv=lambda u, d, _: ["curl", "-sSf", "-C", "-", "-o",
                                          str(d / _name(u[0])), u[0]]),
        Tool("wget", "wget", lambda u, d, _: ["wget", "-q", "-O", str(d / _name(u[0])), u[0]],
             resume_argv=lambda u, d, _: ["wget", "-q", "-c", "-O", str(d / _name(u[0])), u[0]]),
        Tool("freight-16", "freight get -x 16",
             lambda u, d, _: [fr, "get", u[0], "-d", str(d), "-x", "16", "--json"], freight=True),
        Tool("freight", "freight get (defaults: adaptive)",
             lambda u, d, _: [fr, "get", u[0], "-d", str(d), "--json"], freight=True),
    ]


def many_tools() -> list[Tool]:
    fr = freight_bin()
    return [
        Tool("aria2c", "aria2c -j16", lambda u, d, lst: ["aria2c", "-q", "-j16", "-d", str(d),
                                                         "-i", str(lst)]),
        Tool("curl", "curl -Z --parallel-max 16",
             lambda u, d, _: ["curl", "-sSf", "-Z", "--parallel-max", "16", "--output-dir",
                              str(d), "--remote-name-all", *u]),
        Tool("wget", "wget -i (one at a time)",
             lambda u, d, lst: ["wget", "-q", "-P", str(d), "-i", str(lst)]),
        Tool("freight-daemon", "freight add ×N, freight wait (daemon queue, defaults)",
             lambda u, d, _: [fr, "add", "--json", "-d", str(d), *u], freight=True),
        Tool("freight-daemon-16", "the same with `freight settings max_active 16`",
             lambda u, d, _: [fr, "add", "--json", "-d", str(d), *u], freight=True),
    ]


# --- running one process and measuring it --------------------------------------------------


@dataclass
class Run:
    tool: str
    scenario: str
    ok: bool
    wall: float = 0.0
    cpu: float = 0.0
    maxrss_mib: float = 0.0
    rc: int | None = None
    bytes: int = 0
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def mibps(self) -> float:
        return self.bytes / MIB / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu / (self.bytes / GIB) if self.bytes else 0.0


@dataclass
class Proc:
    wall: float
    cpu: float
    maxrss_mib: float
    rc: int
    stdout: str
    stderr: str


def clean_env(home: Path, freight_home: Path | None = None) -> dict[str, str]:
    """A child's environment: no proxies (loopback only), a scratch HOME so that no rc file
    (.curlrc, .wgetrc, aria2.conf) changes a peer's behaviour."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HOME=str(home), NO_PROXY="127.0.0.1", LC_ALL="C.UTF-8")
    if freight_home is not None:
        env["FREIGHT_HOME"] = str(freight_home)
    return env


#: GNU time reports the peak RSS of the program alone. ru_maxrss from our own wait4 cannot:
#: Python starts children with vfork, and Linux then charges the parent's RSS (the bench's
#: ~24 MiB) to the child's high-water mark at exec.
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


def spawn(argv: list[str], env: dict[str, str], scratch: Path) -> tuple[subprocess.Popen, float]:
    if GNU_TIME:
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", str(scratch / "maxrss"), *argv]
    out = open(scratch / "stdout", "wb")  # noqa: SIM115 - handed to the child, closed below
    err = open(scratch / "stderr", "wb")  # noqa: SIM115
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                            cwd=scratch, start_new_session=True)
    out.close()
    err.close()
    return proc, started


def tool_pid(proc: subprocess.Popen) -> int:
    """The measured program's pid: GNU time's only child, or the child itself."""
    if not GNU_TIME:
        return proc.pid
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    for _ in range(2000):
        with contextlib.suppress(OSError, ValueError):
            text = children.read_text().split()
            if text:
                return int(text[0])
        if proc.poll() is not None:
            break
        time.sleep(0.001)
    return proc.pid


def reap(proc: subprocess.Popen, started: float, scratch: Path, timeout: float) -> Proc:
    """Wait for the child with os.wait4: CPU time of the program (and of GNU time, ~1 ms)."""

    def kill() -> None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    maxrss_kib = usage.ru_maxrss  # Linux reports KiB
    with contextlib.suppress(OSError, ValueError, IndexError):
        maxrss_kib = int((scratch / "maxrss").read_text().split()[-1])
    rc = proc.returncode
    with contextlib.suppress(OSError, IndexError, ValueError):
        # GNU time exits with the program's status and writes how it died into its file
        first = (scratch / "maxrss").read_text().splitlines()[0]
        if first.startswith("Command terminated by signal"):
            rc = -int(first.split()[-1])
    return Proc(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        maxrss_mib=maxrss_kib / 1024,
        rc=rc,
        stdout=(scratch / "stdout").read_text(errors="replace"),
        stderr=(scratch / "stderr").read_text(errors="replace"),
    )


def run_process(argv: list[str], env: dict[str, str], scratch: Path, timeout: float) -> Proc:
    proc, started = spawn(argv, env, scratch)
    return reap(proc, started, scratch, timeout)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- the server ----------------------------------------------------------------------------


class BenchServer:
    def __init__(self, scenario: Scenario) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", "0", *scenario.server_args()],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the bench server did not start")
        info = json.loads(line)
        self.port: int = info["port"]
        self.sha256: str = info["sha256"]
        self.base = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, object]:
        with _OPENER.open(self.base + "/_stats", timeout=5) as r:
            return json.loads(r.read())

    def bytes_sent(self) -> int:
        return int(self.stats()["bytes_sent"])  # type: ignore[call-overload]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- scenarios -----------------------------------------------------------------------------


def check_outputs(names: list[str], out: Path, sha: str) -> str:
    """'' when every file is there with the right digest, else what is wrong."""
    for name in names:
        path = out / name
        if not path.exists():
            return f"missing {name}"
        if sha256_of(path) != sha:
            return f"sha256 mismatch for {name}"
    return ""


def run_speed(tool: Tool, sc: Scenario, srv: BenchServer, work: Path, timeout: float) -> Run:
    """One download of one file (S1–S3)."""
    urls = [f"{srv.base}/{sc.key.lower()}-{tool.name}.bin"]
    names = [_name(urls[0])]
    return _run_once(tool, sc, srv, work, timeout, urls, names)


def run_many(tool: Tool, sc: Scenario, srv: BenchServer, work: Path, timeout: float) -> Run:
    """S4: N small files. The daemon variant queues them all, then waits."""
    urls = [f"{srv.base}/f{i:04d}.bin" for i in range(sc.files)]
    names = [_name(u) for u in urls]
    if tool.name.startswith("freight-daemon"):
        return run_daemon(tool, sc, srv, work, timeout, urls, names)
    return _run_once(tool, sc, srv, work, timeout, urls, names)


def _run_once(tool: Tool, sc: Scenario, srv: BenchServer, work: Path, timeout: float,
              urls: list[str], names: list[str]) -> Run:
    scratch = Path(tempfile.mkdtemp(dir=work))
    out = scratch / "out"
    out.mkdir()
    listing = scratch / "urls.txt"
    listing.write_text("".join(u + "\n" for u in urls))
    env = clean_env(scratch, scratch / "freight-home" if tool.freight else None)
    try:
        p = run_process(tool.argv(urls, out, listing), env, scratch, timeout)
        run = Run(tool.name, sc.key, False, p.wall, p.cpu, p.maxrss_mib, p.rc,
                  sc.size * len(urls))
        if p.rc != 0:
            run.note = f"exit {p.rc}: {(p.stderr or p.stdout).strip()[-300:]}"
            return run
        problem = check_outputs(names, out, srv.sha256)
        run.ok = not problem
        run.note = problem
        if tool.freight and len(urls) == 1 and p.stdout.strip():
            with contextlib.suppress(ValueError, IndexError):
                record = json.loads(p.stdout.strip().splitlines()[-1])
                elapsed = float(record.get("elapsed") or 0)
                run.extra = {"connections": record.get("connections"),
                             "engine_elapsed": elapsed,
                             "engine_mibps": run.bytes / MIB / elapsed if elapsed else 0,
                             "notices": record.get("notices")}
        return run
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_available() -> str:
    """'' when this Freight has a daemon with `add` and `wait`, else why not."""
    env = clean_env(Path(tempfile.gettempdir()))
    for sub in ("daemon", "add", "wait"):
        r = subprocess.run([freight_bin(), sub, "--help"], capture_output=True, env=env)
        if r.returncode != 0:
            return f"`freight {sub}` is not available yet"
    return ""


def run_daemon(tool: Tool, sc: Scenario, srv: BenchServer, work: Path, timeout: float,
               urls: list[str], names: list[str]) -> Run:
    """S4 through the daemon's queue: start `freight daemon`, `freight add` every URL (in one
    call), `freight wait`, stop the daemon. CPU and RSS are the daemon's plus the clients'."""
    why = daemon_available()
    if why:
        return Run(tool.name, sc.key, False, note=f"not run: daemon not available ({why})")
    scratch = Path(tempfile.mkdtemp(dir=work))
    out = scratch / "out"
    out.mkdir()
    fhome = scratch / "freight-home"
    env = clean_env(scratch, fhome)
    fr = freight_bin()
    daemon_dir = scratch / "daemon"
    daemon_dir.mkdir()
    daemon, d_started = spawn([fr, "daemon", "--no-tray", "--port", "0"], env, daemon_dir)
    try:
        state = fhome / "state" / "daemon.json"
        deadline = time.monotonic() + 30
        while not state.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                return Run(tool.name, sc.key, False, note="the daemon did not start")
            time.sleep(0.02)
        cpu = 0.0
        rss = 0.0
        if tool.name == "freight-daemon-16":  # like aria2c -j16: 16 downloads at once
            p = run_process([fr, "settings", "max_active", "16"], env,
                            Path(tempfile.mkdtemp(dir=scratch)), timeout)
            if p.rc != 0:
                return Run(tool.name, sc.key, False, note=f"settings exit {p.rc}: {p.stderr}")
        window_cpu0 = proc_cpu(tool_pid(daemon))
        started = time.perf_counter()
        argv = tool.argv(urls, out, scratch / "urls.txt")
        for step in ("add", "wait"):
            step_dir = Path(tempfile.mkdtemp(dir=scratch))
            p = run_process(argv, env, step_dir, timeout)
            cpu += p.cpu
            rss = max(rss, p.maxrss_mib)
            if p.rc != 0:
                return Run(tool.name, sc.key, False, note=f"{step} exit {p.rc}: "
                           f"{(p.stderr or p.stdout).strip()[-300:]}")
            if step == "add":
                ids = json.loads(p.stdout)["ids"]
                argv = [fr, "wait", *(str(i) for i in ids)]
        wall = time.perf_counter() - started
        window_cpu = proc_cpu(tool_pid(daemon)) - window_cpu0
    finally:
        with contextlib.suppress(OSError):
            os.kill(tool_pid(daemon), signal.SIGTERM)
        d = reap(daemon, d_started, daemon_dir, 30)
    run = Run(tool.name, sc.key, False, wall, cpu + d.cpu, max(rss, d.maxrss_mib), 0,
              sc.size * len(urls))
    problem = check_outputs(names, out, srv.sha256)
    run.ok, run.note = not problem, problem
    run.extra = {"daemon_cpu": d.cpu, "daemon_maxrss_mib": d.maxrss_mib,
                 "daemon_window_cpu": window_cpu, "clients_cpu": cpu}
    shutil.rmtree(scratch, ignore_errors=True)
    return run


def run_resume(tool: Tool, sc: Scenario, srv: BenchServer, work: Path, timeout: float) -> Run:
    """S5: SIGKILL the tool once the server has sent half the file, run the same command
    again (the resume form for curl and wget), count what the server sent in total."""
    url = f"{srv.base}/{sc.key.lower()}-{tool.name}.bin"
    scratch = Path(tempfile.mkdtemp(dir=work))
    out = scratch / "out"
    out.mkdir()
    env = clean_env(scratch, scratch / "freight-home" if tool.freight else None)
    try:
        before = srv.bytes_sent()
        proc, started = spawn(tool.argv([url], out, scratch), env, scratch)
        killed_at = None
        # Not proc.poll(): it would reap the child, and wait4 below would then find none.
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            sent = srv.bytes_sent() - before
            if sent >= sc.size // 2:
                os.kill(tool_pid(proc), signal.SIGKILL)
                killed_at = sent
                break
            time.sleep(0.005)
        first = reap(proc, started, scratch, timeout)
        if killed_at is None:
            return Run(tool.name, sc.key, False, note=f"finished before 50 % (exit {first.rc})")
        time.sleep(0.3)  # let the server notice the dead connections
        second_argv = (tool.resume_argv or tool.argv)([url], out, scratch)
        second = run_process(second_argv, env, scratch, timeout)
        time.sleep(0.3)
        total = srv.bytes_sent() - before
        run = Run(tool.name, sc.key, False, first.wall + second.wall, first.cpu + second.cpu,
                  max(first.maxrss_mib, second.maxrss_mib), second.rc, sc.size)
        if second.rc != 0:
            run.note = f"resume exit {second.rc}: {(second.stderr or second.stdout)[-300:]}"
            return run
        problem = check_outputs([_name(url)], out, srv.sha256)
        run.ok, run.note = not problem, problem
        refetched = total - sc.size
        run.extra = {"killed_at": killed_at, "server_sent": total, "refetched": refetched,
                     "refetched_pct": 100 * refetched / sc.size, "resume_wall": second.wall}
        return run
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- the report ----------------------------------------------------------------------------


@dataclass
class Row:
    tool: str
    label: str
    freight: bool
    runs: list[Run]

    @property
    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    def median(self, attr: str) -> float:
        values = [getattr(r, attr) for r in self.good]
        return statistics.median(values) if values else 0.0

    def spread(self, attr: str) -> tuple[float, float]:
        values = [getattr(r, attr) for r in self.good]
        return (min(values), max(values)) if values else (0.0, 0.0)

    def extra_median(self, key: str) -> float:
        values = [float(r.extra[key]) for r in self.good if key in r.extra]  # type: ignore[arg-type]
        return statistics.median(values) if values else 0.0


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError):
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) // 1024} MiB"

    def version(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "missing"

    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aria2c": version(["aria2c", "--version"]),
        "axel": version(["axel", "--version"]),
        "curl": version(["curl", "--version"]),
        "wget": version(["wget", "--version"]),
        "freight": version([freight_bin(), "--version"]),
    }


def load_note(results: dict[str, list[Row]]) -> str:
    loads = [float(r.extra["load1"]) for rows in results.values() for row in rows  # type: ignore[arg-type]
             for r in row.runs if "load1" in r.extra]
    if not loads:
        return "unknown"
    return f"{statistics.median(loads):.2f} (min {min(loads):.2f}, max {max(loads):.2f})"


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def table(sc: Scenario, rows: list[Row]) -> list[str]:
    lines: list[str] = []
    peers = [r for r in rows if not r.freight and r.good]
    if sc.kind == "resume":
        lines += ["| tool | re-fetched MiB (median) | % of file (min–max) | killed at MiB | "
                  "resume s | ok |", "| --- | ---: | ---: | ---: | ---: | --- |"]
        for r in rows:
            if not r.good:
                lines.append(f"| {r.label} | – | – | – | – | {_failure(r)} |")
                continue
            pcts = [float(x.extra["refetched_pct"]) for x in r.good]  # type: ignore[arg-type]
            lines.append(
                f"| {r.label} | {fmt(r.extra_median('refetched') / MIB)} | "
                f"{fmt(r.extra_median('refetched_pct'), 2)} "
                f"({fmt(min(pcts), 2)}–{fmt(max(pcts), 2)}) | "
                f"{fmt(r.extra_median('killed_at') / MIB)} | "
                f"{fmt(r.extra_median('resume_wall'), 2)} | {len(r.good)}/{len(r.runs)} |"
            )
        return lines
    best = max((r.median("mibps") for r in peers), default=0.0)
    ideal_col = sc.ideal is not None
    head = "| tool | MiB/s median (min–max) | × best peer |"
    rule = "| --- | ---: | ---: |"
    if ideal_col:
        head += " % of ideal |"
        rule += " ---: |"
    many = sc.kind == "many"
    head += " CPU-s/GiB | peak RSS MiB |"
    rule += " ---: | ---: |"
    if many:  # per file: every process of the tool; the daemon alone while they ran
        head += " CPU ms/file | daemon CPU ms/file |"
        rule += " ---: | ---: |"
    else:
        head += " engine MiB/s |"
        rule += " ---: |"
    head += " ok |"
    rule += " --- |"
    lines += [head, rule]
    for r in rows:
        if not r.good:
            gap = " – |" if ideal_col else ""
            cols = " – | – |" if many else " – |"
            lines.append(f"| {r.label} | – | – |{gap} – | – |{cols} {_failure(r)} |")
            continue
        lo, hi = r.spread("mibps")
        m = r.median("mibps")
        ratio = fmt(m / best, 2) if best else "–"
        line = f"| {r.label} | {fmt(m)} ({fmt(lo)}–{fmt(hi)}) | {ratio} |"
        if ideal_col:
            line += f" {fmt(100 * m / sc.ideal)} |"  # type: ignore[operator]
        line += f" {fmt(r.median('cpu_per_gib'), 2)} | {fmt(r.median('maxrss_mib'))} |"
        if many:
            per_file = 1000 * r.median("cpu") / sc.files
            window = r.extra_median("daemon_window_cpu")
            line += f" {fmt(per_file, 2)} | {fmt(1000 * window / sc.files, 2) if window else ''} |"
        else:
            engine = r.extra_median("engine_mibps")
            line += f" {fmt(engine) if engine else ''} |"
        line += f" {len(r.good)}/{len(r.runs)} |"
        lines.append(line)
    return lines


def _failure(r: Row) -> str:
    notes = sorted({x.note for x in r.runs if not x.ok})
    return "; ".join(n.replace("|", "/").replace("\n", " ")[:160] for n in notes) or "failed"


COMMANDS_NOTE = """\
URL, DIR and LIST stand for the scenario's URL(s), a fresh folder in /dev/shm, and a file of
URLs. Freight runs with FREIGHT_HOME set to a fresh folder in /dev/shm; every tool runs with a
scratch HOME (no rc files) and no proxy variables."""


def write_report(path: Path, results: dict[str, list[Row]], scs: dict[str, Scenario],
                 info: dict[str, str], args: argparse.Namespace, took: float) -> None:
    out = ["# Benchmarks", "",
           f"Generated by `bench/run.py{' --quick' if args.quick else ''}` "
           f"({args.runs} run{'s' if args.runs != 1 else ''} per tool, medians with min–max; "
           f"{took / 60:.1f} min). Raw runs: `bench/results.json`. Where Freight's CPU goes "
           "and what to change: `bench/PROFILE.md`.", "",
           "Throughput is the file size over the wall time from spawn to exit (start-up "
           "included, for every tool alike). CPU-s/GiB and peak RSS are the child's own, from "
           "`wait4`. The server runs in its own process (`bench/server.py`), not counted. "
           "Units are binary (MiB, GiB). *engine MiB/s* is Freight's own figure: the size over "
           "the transfer's time as `freight get --json` reports it (`elapsed`), without "
           "Python's start-up, the database opening and the final checks.", "",
           f"Load average (1 min) seen before the runs: median {load_note(results)}. These "
           "2-core machines are shared: other work running at the same time slows every tool, "
           "and most of all the ones with many threads; compare rows of one run, not runs.",
           ""]
    for key, rows in results.items():
        sc = scs[key]
        size = f"{sc.files} × {sc.size // KIB} KiB" if sc.files > 1 else f"{sc.size // MIB} MiB"
        out += [f"## {key}: {sc.title} ({size})", ""]
        if sc.ideal:
            latency = f"; plus {sc.latency * 1000:g} ms before the first byte" if sc.latency else ""
            link = ", under the link's 200 MiB/s" if sc.link else ""
            out += [f"Ideal with 16 connections: {sc.ideal:g} MiB/s (16 × the per-connection "
                    f"rate{link}{latency}).", ""]
        out += table(sc, rows) + [""]
        if sc.kind == "many":
            out += ["*CPU ms/file* is every process of a tool over the files; for the daemon "
                    "rows that is the daemon's whole life (its start-up and stop too, ~0.3 s) "
                    "and the `add` and `wait` clients'. *daemon CPU ms/file* is the daemon's "
                    "own CPU from the first `add` to the end of `wait`: what a running daemon "
                    "spends per small download.", ""]
    out += scale_section()
    out += ["## Machine", ""] + [f"- {k}: {v}" for k, v in info.items()] + [""]
    out += ["## Commands", "", COMMANDS_NOTE, ""]
    seen: set[str] = set()
    for tools in (single_tools(), many_tools()):
        for t in tools:
            argv = t.argv(["URL"], Path("DIR"), Path("LIST"))
            cmd = " ".join(argv).replace(freight_bin(), "freight")
            if cmd in seen:
                continue
            seen.add(cmd)
            out.append(f"- {t.label}: `{cmd}`")
            if t.resume_argv:
                r = " ".join(t.resume_argv(["URL"], Path("DIR"), Path("LIST")))
                out.append(f"  (S5 resume: `{r}`)")
    out += ["", "Server: `python bench/server.py --port 0 --size SIZE --rate R --link L "
            "--latency S` (rates per connection and shared; see each scenario's title).", ""]
    path.write_text("\n".join(out) + kept_sections(path))


def scale_section() -> list[str]:
    """The scale figures, from the last runs of bench/scale.py (the daemon with 10,000
    downloads) and bench/popup_paint.py (the popup and the picker in Chromium)."""
    out = ["## Scale: 10,000 downloads", ""]
    try:
        daemon = json.loads((HERE / "scale-daemon.json").read_text())
    except (OSError, ValueError):
        daemon = None
    try:
        popup = json.loads((HERE / "scale-popup.json").read_text())
    except (OSError, ValueError):
        popup = None
    if daemon is None and popup is None:
        return out + ["Not measured yet: `bench/scale.py`, `bench/popup_paint.py`.", ""]
    out += ["Not from this run: from the last `python bench/scale.py` and "
            "`python bench/popup_paint.py` (their JSON files beside this one, with the "
            "machine and the load they saw). No figure here is asserted by a test.", "",
            "| figure | value |", "| --- | ---: |"]
    if daemon is not None:
        add, reads = daemon["add"], daemon["reads"]
        out += [
            f"| `freight add` of {add['urls']} URLs, spawn to exit (median of "
            f"{len(add['runs'])}) | {add['wall_s']:.2f} s |",
            f"| … its CPU: the CLI / the daemon | {add['cli_cpu_s']:.2f} s / "
            f"{add['daemon_cpu_s']:.2f} s |",
            f"| `freight --version` (the start-up floor) | {add['startup_floor_s']:.2f} s |",
            f"| `list`: first / last page of 500 ({reads['total']} downloads) | "
            f"{reads['list_first_page_ms']:.1f} / {reads['list_last_page_ms']:.1f} ms |",
            f"| `status` | {reads['status_ms']:.1f} ms |",
            f"| daemon CPU, nothing running | "
            f"{daemon['idle_nothing_running']['cpu_percent']:.2f} % "
            f"({daemon['idle_nothing_running']['wakeups_per_s']:.0f} wake-ups/s) |",
            f"| daemon CPU, three slow downloads running | "
            f"{daemon['idle_three_running']['cpu_percent']:.1f} % |",
        ]
    if popup is not None:
        paint, picker = popup["first_paint"], popup["picker"]
        out += [
            f"| popup's first row, {paint['downloads_in_daemon']} downloads in the daemon "
            f"(median of {paint['loads']}; {paint['rows_in_first_paint']} rows) | "
            f"{paint['first_row_ms_median']:.0f} ms |",
            f"| \"Download all links\": {picker['links']} links sent / all completed | "
            f"{picker['sent_s']:.1f} / {picker['all_completed_s']:.1f} s |",
            f"| … the popup's main thread busy meanwhile (longest pause) | "
            f"{picker['popup_main_thread_s']['TaskDuration']:.1f} s "
            f"({picker['popup_longest_task_ms']:.0f} ms) |",
        ]
    return out + [""]


#: RESULTS.md from this line on is written by other benchmarks (soak.py, limits.py) and by
#: hand; a new run rewrites only what comes before it.
KEEP_MARKER = "<!-- Sections below are not written by bench/run.py; it keeps them. -->"


def kept_sections(path: Path) -> str:
    try:
        old = path.read_text()
    except FileNotFoundError:
        return ""
    at = old.find(KEEP_MARKER)
    return "" if at < 0 else "\n" + old[at:]


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small files, one run")
    p.add_argument("--runs", type=int, help="runs per tool (default 3, 1 with --quick)")
    p.add_argument("--scenario", action="append", help="S1..S5 (repeatable; default all)")
    p.add_argument("--tools", help="comma-separated tool names to run (default all)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"))
    p.add_argument("--json-out", default=str(HERE / "results.json"))
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    scs = scenarios(args.quick)
    chosen = [s.upper() for s in (args.scenario or list(scs))]
    unknown = [s for s in chosen if s not in scs]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; choose from {list(scs)}")
    wanted = set(args.tools.split(",")) if args.tools else None
    missing = [t for t in ("aria2c", "axel", "curl", "wget") if shutil.which(t) is None]
    if missing:
        print(f"missing peers {missing}: apt-get install -y aria2 axel curl wget", file=sys.stderr)
        return 2

    # Bytecode as an installed package has it: pip compiles on install, but an editable
    # install under PYTHONDONTWRITEBYTECODE=1 would recompile every edited module on every
    # run (~10-30 ms of each Freight run, counted in its wall time).
    compileall.compile_dir(str(HERE.parent / "daemon"), quiet=1)
    compileall.compile_dir(str(HERE.parent / "native_host"), quiet=1)
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="freight-bench-", dir=SHM))
    results: dict[str, list[Row]] = {}
    try:
        for key in chosen:
            sc = scs[key]
            tools = many_tools() if sc.kind == "many" else single_tools()
            if sc.kind == "resume":
                tools = [t for t in tools if t.name != "freight"]  # one Freight row: -x 16
            if wanted:
                tools = [t for t in tools if t.name in wanted]
            rows = {t.name: Row(t.name, t.label, t.freight, []) for t in tools}
            print(f"== {key}: {sc.title}", flush=True)
            srv = BenchServer(sc)
            try:
                for i in range(args.runs):
                    for t in tools:
                        done = rows[t.name].runs
                        if done and done[-1].note.startswith("not run"):
                            continue
                        runner = {"speed": run_speed, "many": run_many, "resume": run_resume}
                        load = os.getloadavg()[0]
                        try:
                            run = runner[sc.kind](t, sc, srv, work, args.timeout)
                        except (OSError, ValueError, RuntimeError) as exc:
                            # One broken run (the server gone, a tool's odd output) must not
                            # lose the others: record it and go on with a fresh server.
                            run = Run(t.name, sc.key, False, note=f"bench error: {exc!r}")
                            if srv.proc.poll() is not None:
                                print(f"  the server exited ({srv.proc.returncode}); restarting",
                                      flush=True)
                                srv = BenchServer(sc)
                        run.extra["load1"] = load
                        rows[t.name].runs.append(run)
                        detail = (f"refetched {run.extra.get('refetched_pct', 0):.2f} %"
                                  if sc.kind == "resume" else
                                  f"{run.mibps:7.1f} MiB/s  cpu {run.cpu_per_gib:5.2f} s/GiB  "
                                  f"rss {run.maxrss_mib:5.1f} MiB")
                        print(f"  run {i + 1} {t.name:15s} {'ok ' if run.ok else 'BAD'} "
                              f"{detail} {run.note[:120]}", flush=True)
            finally:
                srv.close()
            results[key] = list(rows.values())
            save(args, results, scs, chosen, time.monotonic() - began)  # after each scenario
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out} and {args.json_out}")
    return 0


def save(args: argparse.Namespace, results: dict[str, list[Row]], scs: dict[str, Scenario],
         chosen: list[str], took: float) -> None:
    info = machine()
    write_report(Path(args.out), results, scs, info, args, took)
    raw = {
        "machine": info,
        "args": {"quick": args.quick, "runs": args.runs, "scenarios": chosen},
        "scenarios": {k: asdict(scs[k]) for k in results},
        "runs": [dict(asdict(r), mibps=r.mibps, cpu_per_gib=r.cpu_per_gib)
                 for rows in results.values() for row in rows for r in row.runs],
    }
    Path(args.json_out).write_text(json.dumps(raw, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
