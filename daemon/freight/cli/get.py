"""`freight get`: the engine in the foreground, without the daemon.

Each URL becomes (or resumes) a download in the same SQLite database the daemon uses; running
the same command again after any interruption picks up the recorded state. Run again after
it completed, it leaves the file alone ("already downloaded: PATH", exit 0), as wget -c,
curl -C - and aria2c do; ``--again`` downloads a new copy. A fresh link for a download that
waits for one (needs_refresh, exit 3) resumes it: same site (registrable host), same path,
and the engine's If-Range and size checks hold the bytes to the same file.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from freight import config, logs
from freight.cli.already import already
from freight.cli.common import connections_flag, folder_flag, rate_flag
from freight.cli.terminal import console_for, terminal_text
from freight.engine import files
from freight.engine.checksum import normalize_checksum
from freight.engine.transfer import Transfer
from freight.errors import FreightError, InputError
from freight.headers import parse_header_lines, split_headers, with_basic
from freight.models import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NEEDS_REFRESH,
    EXIT_OK,
    Download,
    DownloadState,
    exit_code,
)
from freight.states import StateKeeper
from freight.store import Sealer, Store
from freight.units import format_rate, format_size
from freight.urls import check_http_url, split_credentials

#: The adaptive count's numbers, read from the settings' defaults so the help cannot drift.
_START = config.SETTINGS["connections"].default
_TOP = config.SETTINGS["max_connections"].default


def configure(sub: Any) -> None:
    p = sub.add_parser("get", help="download URLs in the foreground (no daemon needed)")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-d", "--dir", help="folder to save into (default: your Downloads folder; "
                   "its last level is created if missing, and said)")
    p.add_argument("-o", "--output", metavar="NAME", help="file name (one URL only)")
    p.add_argument("-x", "--connections", type=int, metavar="N",
                   help="connections per download, 1-64 (default: adaptive, from "
                   f"{_START} up to {_TOP})")
    p.add_argument("--limit", metavar="RATE", help="speed limit, e.g. 500K, 2M")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("--checksum", metavar="sha256=HEX", help="verify before the final rename")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--json", action="store_true", help="print one JSON object per download")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument(
        "--again", action="store_true",
        help="download a new copy even if this URL was already saved into this folder "
        "(without it, a finished download is left alone: \"already downloaded\", exit 0)",
    )
    p.set_defaults(func=run_get)


class LazySealer:
    """Asks the keyring for the key only when a secret header is stored or read."""

    def __init__(self, factory: Callable[[], Sealer]) -> None:
        self._factory = factory
        self._sealer: Sealer | None = None

    def _get(self) -> Sealer:
        if self._sealer is None:
            self._sealer = self._factory()
        return self._sealer

    def seal(self, plain: bytes) -> bytes:
        return self._get().seal(plain)

    def open(self, sealed: bytes) -> bytes:
        return self._get().open(sealed)


def open_store(paths: config.Paths) -> Store:
    def factory() -> Sealer:
        from freight import secrets

        return secrets.sealer(paths)

    return Store(paths.database, sealer=LazySealer(factory))


def run_get(args: argparse.Namespace) -> int:
    err = console_for(args)
    try:
        # Userinfo leaves the URL here: stored sealed as Basic auth, never in clear (urls.py).
        urls = [split_credentials(_checked_url(u, n, len(args.urls)))
                for n, u in enumerate(args.urls, 1)]
        if args.output and len(urls) > 1:
            raise InputError("-o/--output names one file: give one URL with it")
        connections_flag(args.connections)
        limit = rate_flag("--limit", args.limit) if args.limit else None
        headers, secret = split_headers(parse_header_lines(args.header))
        checksum = normalize_checksum(args.checksum) if args.checksum else None
        if args.dir:
            folder, created = folder_flag(args.dir)
            if created and not args.json:
                err.say(f"Created folder {folder}")
        else:  # the default folder is made when missing, as a browser makes its own
            folder = os.path.abspath(os.path.expanduser(config.default_download_dir()))
    except InputError as exc:
        err.say(f"freight get: {exc}")
        return 2

    paths = config.paths_from_env().ensure()
    logs.setup(paths.log_file)
    try:
        store = open_store(paths)
    except FreightError as exc:
        err.say(f"freight get: {exc}")
        return EXIT_FAILED
    settings = store.settings()
    results: list[int] = []
    try:
        for url, basic in urls:
            code = _get_one(store, settings, url, folder, args, headers,
                            with_basic(secret, basic), limit, checksum, err)
            results.append(code)
            if code == EXIT_INTERRUPTED:
                break
    finally:
        store.close()
    for code in (EXIT_INTERRUPTED, EXIT_FAILED, EXIT_NEEDS_REFRESH):
        if code in results:
            return code
    return EXIT_OK


def _get_one(
    store: Store,
    settings: dict[str, Any],
    url: str,
    folder: str,
    args: argparse.Namespace,
    headers: dict[str, str],
    secret: dict[str, str],
    limit: int | None,
    checksum: str | None,
    err: Any,
) -> int:
    keeper = StateKeeper(store)  # no listener: the progress line reads the transfer itself
    try:
        download = store.find_unfinished(url, folder, args.output)
        if download is None and not args.again:
            finished = store.find_completed(url, folder, args.output)
            if finished is not None and files.still_there(finished.path, finished.size):
                return _already(finished, args, err)
        adopted = download is None and (download := _waiting_for(store, url, folder, args))
        if download is None:
            download = store.add(
                url, folder, requested_name=args.output, headers=headers,
                secret_headers=secret or None, connections=args.connections, limit=limit,
                checksum=checksum, insecure=args.insecure,
            )
        else:
            if not args.json:
                fresh = " with the fresh link" if adopted else ""
                err.say(f"Resuming {download.name or url}{fresh} ({download.done} bytes on disk)")
            changes: dict[str, Any] = {"limit": limit, "connections": args.connections}
            if adopted:
                changes.update(url=url, final_url=None)
            if checksum:
                changes["checksum"] = checksum
            if headers:
                changes["headers"] = headers
            store.update(download.id, **changes)
            if secret:
                store.set_secret_headers(download.id, secret)
        if download.state != DownloadState.ACTIVE:
            download = keeper.move(download.id, DownloadState.ACTIVE)
    except FreightError as exc:
        err.say(f"freight get: {exc}")
        return EXIT_FAILED

    engine = config.EngineSettings.from_settings(settings, connections=args.connections)
    transfer = Transfer(
        store, download.id, engine, keeper=keeper, on_notice=lambda m: err.say(m, "yellow")
    )
    started = time.monotonic()
    final = _run_with_display(transfer, store, download, args, err)
    elapsed = time.monotonic() - started
    if transfer.busy:
        err.say(f"freight get: {transfer.busy}; nothing was changed", "red")
        return EXIT_FAILED
    code = exit_code(final.state)
    if args.json:
        record = final.public()
        record.update(
            elapsed=round(elapsed, 3),
            speed=round((final.size or 0) / elapsed) if elapsed > 0 and final.size else 0,
            notices=transfer.notices,
            exit_code=code,
        )
        print(json.dumps(record), flush=True)
    elif final.state == DownloadState.COMPLETED:
        size = format_size(final.size or 0)
        err.say(f"Saved {final.path} ({size} in {elapsed:.1f}s)", "green")
    elif final.state == DownloadState.NEEDS_REFRESH:
        err.say(f"The link expired: {final.error}. Get a fresh link and run "
                f"`{resume_command(folder, args.output)}` to resume it (or "
                f"`freight refresh {final.id} FRESH_URL` through the daemon).", "yellow")
    elif final.state == DownloadState.PAUSED and final.error:
        err.say(f"Paused: {final.error}. Run the same command again to resume.", "red")
    elif code == EXIT_INTERRUPTED:
        err.say("Interrupted; progress saved. Run the same command again to resume.")
    else:
        err.say(f"Failed: {final.error}", "red")
    if final.state == DownloadState.PAUSED and final.error:
        return EXIT_FAILED
    return code


def _checked_url(url: str, n: int, count: int) -> str:
    try:
        return check_http_url(url)
    except InputError as exc:  # never quoted: the URL may hold a password
        where = f"URL {n} of {count}" if count > 1 else "URL"
        raise InputError(f"{where}: {exc} (like https://example.com/file.iso)") from None


def resume_command(folder: str, output: str | None) -> str:
    """The command that resumes a download waiting for a fresh link (see _waiting_for)."""
    name = f" -o {shlex.quote(output)}" if output else ""
    return f"freight get -d {shlex.quote(folder)}{name} FRESH_URL"


def _already(download: Download, args: argparse.Namespace, err: Any) -> int:
    message = f"already downloaded: {download.path}"
    if args.json:
        record = download.public()
        record.update(elapsed=0.0, speed=0, notices=[message], exit_code=EXIT_OK)
        print(json.dumps(record), flush=True)
    else:
        err.say(already(download.state.value, download.id, download.name, download.path,
                        download.url), "green")
    return EXIT_OK


def _waiting_for(
    store: Store, url: str, folder: str, args: argparse.Namespace
) -> Download | None:
    """The download into this folder that waits for a fresh link (needs_refresh) of the file
    ``url`` names: same site, same path. It must know its size and have a validator that
    If-Range can carry (a strong ETag or Last-Modified): the resume's range requests then
    prove the same file (same total, validator unchanged; RFC 9110 §13.1.5) or start over
    from zero, never splicing two files."""
    for waiting in store.waiting_for_a_link(folder, args.output):
        strong = bool(waiting.etag) and not (waiting.etag or "").startswith("W/")
        if waiting.size is None or not waiting.resumable or not (strong or waiting.last_modified):
            continue
        if any(same_file_link(url, old) for old in (waiting.url, waiting.final_url) if old):
            return waiting
    return None


def same_file_link(new: str, old: str) -> bool:
    """Same site (registrable host) and same path: a fresh signed link to the same file
    differs in its query, or in the CDN host of one site, not in its path."""
    a, b = urlsplit(new), urlsplit(old)
    return a.path == b.path and site(a.hostname or "") == site(b.hostname or "")


#: Without the public suffix list, a site is a host's last two labels, or three below the
#: usual second-level suffixes of country codes (co.uk, com.au, ...).
_SECOND_LEVEL = {"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go"}


def site(host: str) -> str:
    """The registrable part of ``host`` ("dl.example.com" → "example.com"); an IP address
    is its own site."""
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


class _Display:
    """The rich progress line: bytes, speed, ETA and live connection count."""

    def __init__(self, console: Any, label: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        done, speed = _unit_columns()
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), done(), speed(),
            TimeRemainingColumn(), TextColumn("{task.fields[conns]} conn"), console=console,
        )
        self.task = self.progress.add_task(terminal_text(label), total=None, conns=0)

    def __enter__(self) -> _Display:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, done: int, size: int | None, connections: int, label: str) -> None:
        self.progress.update(
            self.task, completed=done, total=size, conns=connections,
            description=terminal_text(label),
        )


def _unit_columns() -> tuple[type[Any], type[Any]]:
    """rich's columns for bytes done and speed, written with :mod:`freight.units` (rich's own
    use decimal units, which would disagree with everything else Freight prints)."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class DoneColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            done = format_size(task.completed)
            text = done if task.total is None else f"{done}/{format_size(task.total)}"
            return Text(text, style="progress.download")

    class SpeedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else format_rate(speed),
                        style="progress.data.speed")

    return DoneColumn, SpeedColumn


def _run_with_display(
    transfer: Transfer, store: Store, download: Download, args: argparse.Namespace, err: Any
) -> Download:
    outcome: list[Download] = []
    # Wait on an Event, not on thread.join(): in CPython 3.11 a KeyboardInterrupt inside
    # join() marks the still-running thread as stopped, and we would exit before the pause.
    finished = threading.Event()

    def drive() -> None:
        try:
            outcome.append(transfer.run())
        finally:
            finished.set()

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    display = _Display(err.console, download.url) if err.console is not None else None
    label = download.url
    try:
        threading.Thread(target=drive, name="transfer").start()
        with display or contextlib.nullcontext():
            while not finished.is_set():
                try:
                    finished.wait(0.25)
                    if display is not None:
                        p = transfer.progress()
                        with contextlib.suppress(FreightError):  # a failing store: no name
                            label = store.get(download.id).name or download.url
                        display.update(p.done, p.size, p.connections, label)
                except KeyboardInterrupt:
                    transfer.stop("pause")
                    while not finished.is_set():
                        try:
                            finished.wait()
                        except KeyboardInterrupt:
                            continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    return outcome[0] if outcome else store.get(download.id)
