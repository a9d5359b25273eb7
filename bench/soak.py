"""Soak: a few hundred downloads through a real daemon, with faults, for several minutes.

Not a unit test: ``.venv/bin/python bench/soak.py --minutes 5``. Everything runs on 127.0.0.1:
the fault-injecting server from tests/faultserver.py and a ``freight daemon`` process in a
throwaway FREIGHT_HOME. Downloads are added in waves; each file gets one behaviour (clean,
dropped connections, a stall, 503s, a file that changes mid-download, no ranges, 404, a
redirect). Between waves the finished downloads are removed (files deleted) so the disk
stays small while the daemon keeps running.

It reports, and exits 1 unless all hold:
- no download stuck: every one reaches completed / failed / needs_refresh before its deadline;
- every completed file equals one whole version of the served file (never a splice);
- every failure carries a reason (``error`` text and ``error_kind``);
- the daemon's RSS (sampled every second from /proc) stays flat: the last quarter's median
  is within 25 % (and 20 MiB) of the first quarter's after the first wave.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "security")]

from faultserver import FaultServer, make_data  # noqa: E402
from secdaemon import DaemonProcess  # noqa: E402

END_STATES = {"completed", "failed", "needs_refresh", "removed"}
KIB = 1024


def behaviours(rng: random.Random, size: int) -> tuple[str, dict[str, Any], bool]:
    """(name, FaultServer options, whether the download must complete)."""
    kind = rng.choice(["clean", "clean", "drop", "drop", "stall", "busy", "changed",
                       "no_ranges", "missing", "redirect", "slow"])
    if kind == "drop":
        return kind, {"drop_after": {"times": 3, "bytes": rng.randrange(1, size)}}, True
    if kind == "stall":
        return kind, {"stall_after": {"times": 1, "bytes": rng.randrange(1, size)},
                      "stall_seconds": 3600}, True
    if kind == "busy":
        return kind, {"status_script": [503, 503, 429], "retry_after": 0}, True
    if kind == "changed":
        return kind, {"change_after": rng.randrange(1, 4),
                      "changed_data": make_data(size, seed=rng.randrange(1 << 30))}, True
    if kind == "no_ranges":
        return kind, {"ignore_range": True}, True
    if kind == "slow":
        return kind, {"rate": 512 * KIB}, True
    return kind, {}, kind != "missing"


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = Path(tempfile.mkdtemp(prefix="freight-soak-"))
        self.folder = self.work / "downloads"
        self.folder.mkdir()
        self.daemon = DaemonProcess(self.work / "home")
        self.server = FaultServer()
        self.rss: list[tuple[float, int]] = []
        self.results: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._sampling = True

    # .. RSS ..

    def _sample(self) -> None:
        status = Path(f"/proc/{self.daemon.proc.pid}/status")  # type: ignore[union-attr]
        while self._sampling:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss.append((time.monotonic(), int(line.split()[1]) * KIB))
            except OSError:
                return
            time.sleep(1.0)

    # .. one wave ..

    def wave(self, ws: Any, number: int) -> None:
        expected: dict[int, dict[str, Any]] = {}
        for i in range(self.args.wave):
            size = self.rng.choice([0, 1, 64 * KIB, 700 * KIB, 3 * 1024 * KIB,
                                    self.rng.randrange(1, 6 * 1024 * KIB)])
            data = make_data(size, seed=number * 10_000 + i)
            kind, options, must_complete = behaviours(self.rng, max(size, 2))
            path = f"/w{number}/f{i}.bin"
            if kind == "missing":
                url = self.server.url(path)  # never added: 404
            elif kind == "redirect":
                self.server.add(path, data, etag=f"e{number}-{i}")
                url = self.server.add(path + "-r", redirect_to=path)
            else:
                url = self.server.add(path, data, etag=f"e{number}-{i}", **options)
            versions = {hashlib.sha256(data).hexdigest()}
            if "changed_data" in options:
                versions.add(hashlib.sha256(options["changed_data"]).hexdigest())
            reply = self.daemon.call(ws, "add", {"url": url, "dir": str(self.folder),
                                                 "name": f"w{number}-f{i}.bin"}, id_=i + 1)
            if "result" not in reply:
                self.problems.append(f"add refused: {reply}")
                continue
            expected[reply["result"]["id"]] = {
                "kind": kind, "versions": versions, "must_complete": must_complete,
                "size": size,
            }
        deadline = time.monotonic() + self.args.wave_timeout
        downloads: dict[int, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            listed = self.daemon.call(ws, "list", {"limit": 10_000}, id_=99_999)["result"]
            downloads = {d["id"]: d for d in listed["downloads"] if d["id"] in expected}
            if all(d["state"] in END_STATES for d in downloads.values()):
                break
            time.sleep(0.5)
        for did, want in expected.items():
            d = downloads.get(did)
            record = {"wave": number, "id": did, "kind": want["kind"], "size": want["size"],
                      "state": d and d["state"], "error_kind": d and d["error_kind"]}
            self.results.append(record)
            if d is None or d["state"] not in END_STATES:
                self.problems.append(f"stuck: {did} {want['kind']} {d and d['state']}")
                continue
            if d["state"] == "completed":
                digest = hashlib.sha256(Path(d["path"]).read_bytes()).hexdigest()
                if digest not in want["versions"]:
                    self.problems.append(f"wrong bytes: {did} {want['kind']} {d['path']}")
            elif not d.get("error") or not d.get("error_kind"):
                self.problems.append(f"{d['state']} without a reason: {did} {want['kind']}")
            elif want["must_complete"]:
                self.problems.append(
                    f"should have completed: {did} {want['kind']}: {d['error']}")
        ids = list(expected)
        if ids:
            self.daemon.call(ws, "remove", {"ids": ids, "delete_file": True}, id_=99_998)

    def run(self) -> int:
        self.server.start()
        self.daemon.start()
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            with self.daemon.connect() as ws:
                self.daemon.call(ws, "set_settings", {"settings": {
                    "max_active": 8, "stall_timeout": 1.5, "retry_base": 0.05,
                    "retry_max": 1.0, "max_tries": 12, "checkpoint_interval": 0.5,
                }})
                number = 0
                while time.monotonic() - started < self.args.minutes * 60:
                    number += 1
                    t0 = time.monotonic()
                    self.wave(ws, number)
                    print(f"wave {number}: {self.args.wave} downloads in "
                          f"{time.monotonic() - t0:.1f}s, rss "
                          f"{self.rss[-1][1] / 2**20:.1f} MiB, problems {len(self.problems)}",
                          flush=True)
        finally:
            self._sampling = False
            elapsed = time.monotonic() - started
            alive = self.daemon.alive()
            code = self.daemon.stop()
            self.server.stop()
        return self.report(elapsed, alive, code)

    def report(self, elapsed: float, alive: bool, exit_code: int | None) -> int:
        rss = [r for _, r in self.rss]
        quarter = max(1, len(rss) // 4)
        first = statistics.median(rss[quarter // 2 : quarter + quarter // 2] or rss[:1])
        last = statistics.median(rss[-quarter:])
        flat = last <= first * 1.25 or last - first <= 20 * 2**20
        states: dict[str, int] = {}
        for r in self.results:
            states[str(r["state"])] = states.get(str(r["state"]), 0) + 1
        by_kind: dict[str, dict[str, int]] = {}
        for r in self.results:
            by_kind.setdefault(r["kind"], {}).setdefault(str(r["state"]), 0)
            by_kind[r["kind"]][str(r["state"])] += 1
        summary = {
            "minutes": round(elapsed / 60, 2),
            "downloads": len(self.results),
            "bytes": sum(r["size"] for r in self.results if r["state"] == "completed"),
            "states": states,
            "by_behaviour": by_kind,
            "rss_mib": {"first_quarter_median": round(first / 2**20, 1),
                        "last_quarter_median": round(last / 2**20, 1),
                        "max": round(max(rss) / 2**20, 1), "samples": len(rss)},
            "rss_flat": flat,
            "daemon_alive_at_end": alive,
            "daemon_exit_code": exit_code,
            "problems": self.problems,
        }
        print(json.dumps(summary, indent=2))
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(summary, indent=2))
        ok = flat and alive and exit_code == 0 and not self.problems
        return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--wave", type=int, default=60, help="downloads added per wave")
    parser.add_argument("--wave-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--json", help="also write the summary here")
    return Soak(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
