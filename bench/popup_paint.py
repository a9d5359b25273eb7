"""The popup at scale, in real headless Chromium with the real extension, native host and daemon.

    .venv/bin/python bench/popup_paint.py [--loads 7] [--links 300] [--extension DIR]

1. First paint: a daemon whose database holds 10,000 downloads (filled with freight.store
   before it starts, as tests/daemon/test_daemon_scale.py does); the popup page is loaded
   ``--loads`` times. Each load reports the time from navigation to the first row drawn: the
   ``freight-first-rows`` performance mark popup.js sets, and, for any version of the popup,
   a MutationObserver's time of the first ``.dl`` row (an init script); medians are kept.
2. "Download all links with Freight…" on a page of ``--links`` small files (1–200 KiB, 20 ms
   first-byte latency, tests/faultserver.py) against that same daemon, the popup open: the
   time until the picker says they were sent, until the daemon has completed them all, and
   the popup's long tasks meanwhile (PerformanceObserver ``longtask``: main-thread work over
   50 ms, which is when a click waits) and its main thread's busy time (CDP
   ``Performance.getMetrics``: tasks, script, layout, style), which the page takes from the
   daemon, host and worker on the same cores.

``--extension DIR`` measures another copy of extension/ (say an older commit's, from
``git archive``) against the same daemon. Figures go to bench/scale-popup.json (with the
machine: cores, load, Chromium's version, the command) and are printed.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from faultserver import FaultServer, make_data  # noqa: E402
from history import fill_history  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FREIGHT = Path(sys.executable).parent / "freight"
EXTENSION_ID = (ROOT / "extension" / "EXTENSION_ID").read_text().strip()
OUT = ROOT / "bench" / "scale-popup.json"

# Run in every page before its own scripts: when the first row appears, and the long tasks.
INIT = """
window.__firstRow = null; window.__long = [];
new MutationObserver((_, obs) => {
  if (!document.querySelector('#list .dl')) return;
  window.__firstRow = performance.now();
  obs.disconnect();
}).observe(document, {subtree: true, childList: true});
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push(e.duration);
  })
    .observe({type: 'longtask', buffered: true});
} catch (e) {}
"""


def wait(fn: Any, timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


def environment(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "FREIGHT_HOME": str(tmp / "freight-home"),
           "FREIGHT_DOWNLOAD_DIR": str(tmp / "downloads"),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local/share")}
    env.pop("DISPLAY", None)
    return env


def freight(env: dict[str, str], *args: str) -> str:
    res = subprocess.run([str(FREIGHT), *args], env=env, capture_output=True, text=True,
                         timeout=60)
    if res.returncode:
        raise SystemExit(f"freight {' '.join(args)} failed: {res.stdout}{res.stderr}")
    return res.stdout


def links_page(srv: FaultServer, count: int) -> None:
    rng = random.Random(7)
    urls = []
    for i in range(count):
        data = make_data(rng.randint(1, 200) * 1024, seed=i)
        urls.append(srv.add(f"/d/{i:03d}/file-{i:03d}.bin", data=data, etag=True, latency=0.02))
    body = "<!doctype html><title>Small files</title>" + "".join(
        f'<p><a href="{html.escape(u)}">{i}</a></p>' for i, u in enumerate(urls))
    srv.add("/links.html", data=body.encode(), content_type="text/html; charset=utf-8")


def rpc(page: Any, method: str) -> Any:
    res = page.evaluate(
        f"chrome.runtime.sendMessage({{type: 'rpc', method: {json.dumps(method)}, params: {{}}}})")
    if not res.get("ok"):
        raise SystemExit(f"{method}: {res}")
    return res["result"]


def busy(cdp: Any) -> dict[str, float]:
    """The page's main-thread time so far, in seconds (CDP Performance.getMetrics): all tasks,
    script, layout and style."""
    wanted = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {name: float(metrics.get(name, 0.0)) for name in wanted}


def first_paint(ctx: Any, popup_url: str) -> dict[str, Any]:
    page = ctx.new_page()
    page.goto(popup_url)
    got = wait(lambda: page.evaluate(
        "window.__firstRow !== null && ({row: window.__firstRow, rows: "
        "document.querySelectorAll('#list .dl').length, mark: (performance.getEntriesByName("
        "'freight-first-rows')[0] || {}).startTime ?? null})"), 30, "the popup's first row",
        every=0.01)
    page.close()
    return dict(got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--downloads", type=int, default=10_000)
    ap.add_argument("--loads", type=int, default=7)
    ap.add_argument("--links", type=int, default=300)
    ap.add_argument("--extension", type=Path, default=ROOT / "extension")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load = os.getloadavg()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="freight-popup-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = environment(tmp)
        started = time.monotonic()
        counts = fill_history(Path(env["FREIGHT_HOME"]), args.downloads, tmp / "old")
        fill_s = time.monotonic() - started
        log = open(tmp / "daemon.out", "wb")  # noqa: SIM115
        daemon = subprocess.Popen([str(FREIGHT), "daemon", "--no-tray", "--port", "0"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        srv = FaultServer().start()
        try:
            wait(lambda: (Path(env["FREIGHT_HOME"]) / "state" / "daemon.json").exists(), 30,
                 "the daemon")
            udd = tmp / "profile"
            (udd / "Default").mkdir(parents=True)
            freight(env, "install", "--browser", "chromium", "--user-data-dir", str(udd),
                    "--no-autostart")
            ext = args.extension.resolve()
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    str(udd), executable_path=CHROMIUM, headless=True, env=env,
                    args=[f"--disable-extensions-except={ext}", f"--load-extension={ext}"])
                ctx.add_init_script(INIT)
                version = ctx.browser.version if ctx.browser else "?"
                base = f"chrome-extension://{EXTENSION_ID}"
                probe = ctx.new_page()
                probe.goto(f"{base}/options.html")
                wait(lambda: probe.evaluate("chrome.runtime.sendMessage({type: 'state'})")
                     ["result"]["status"]["state"] == "connected", 30, "the extension to connect")
                loads = [first_paint(ctx, f"{base}/popup.html") for _ in range(args.loads)]
                rows = loads[0]["rows"]
                marks = [x["mark"] for x in loads if x["mark"] is not None]

                # "Download all links with Freight…", the popup open.
                links_page(srv, args.links)
                popup = ctx.new_page()
                popup.goto(f"{base}/popup.html")
                wait(lambda: popup.evaluate("window.__firstRow !== null"), 30, "the popup")
                popup.evaluate("window.__long = []")
                cdp = ctx.new_cdp_session(popup)
                cdp.send("Performance.enable")
                busy0 = busy(cdp)
                tab = ctx.new_page()
                tab.goto(srv.url("/links.html"))
                tab_id = probe.evaluate("chrome.tabs.query({}).then((ts) => ts.find((t) => "
                                        "(t.url || '').endsWith('/links.html')).id)")
                picker = ctx.new_page()
                picker.goto(f"{base}/picker.html?tab={tab_id}")
                wait(lambda: picker.inner_text("#msg").startswith(f"{args.links} of"), 30,
                     "the picker's links")
                before = rpc(probe, "status")["completed"]
                t0 = time.monotonic()
                picker.click("#send")
                sent = wait(lambda: "sent to Freight" in picker.inner_text("#msg")
                            and time.monotonic() - t0, 600, "the picker to send", every=0.02)
                done = wait(lambda: rpc(probe, "status")["completed"] - before >= args.links
                            and time.monotonic() - t0, 900, "the downloads to complete",
                            every=0.02)
                msg = picker.inner_text("#msg")
                drawn = wait(lambda: popup.evaluate(
                    "document.querySelectorAll('#list .dl .pill.completed').length")
                    >= args.links and time.monotonic() - t0, 120, "the popup to show them")
                long_tasks = popup.evaluate("window.__long")
                work = {k: round(v - busy0[k], 3) for k, v in busy(cdp).items()}
                ctx.close()
        finally:
            srv.stop()
            subprocess.run([str(FREIGHT), "stop"], env=env, capture_output=True, timeout=30)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
            log.close()

    result = {
        "first_paint": {
            "downloads_in_daemon": args.downloads, "states": counts, "loads": args.loads,
            "rows_in_first_paint": rows,
            "first_row_ms_median": round(statistics.median(x["row"] for x in loads), 1),
            "first_row_ms": [round(x["row"], 1) for x in loads],
            "mark_ms_median": round(statistics.median(marks), 1) if marks else None,
        },
        "picker": {
            "links": args.links, "message": msg, "sent_s": round(sent, 2),
            "all_completed_s": round(done, 2), "popup_shows_all_s": round(drawn, 2),
            "popup_long_tasks": len(long_tasks),
            "popup_long_tasks_ms_total": round(sum(long_tasks), 1),
            "popup_longest_task_ms": round(max(long_tasks, default=0), 1),
            "popup_main_thread_s": work,
        },
        "machine": {
            "cores": os.cpu_count(), "load_before": load, "chromium": version,
            "python": platform.python_version(), "platform": platform.platform(),
            "fill_database_s": round(fill_s, 1),
        },
        # Relative to the tree when it is this tree's: no machine's paths in the figures.
        "extension": os.path.relpath(args.extension, ROOT),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
