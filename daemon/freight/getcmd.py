"""`freight get`: the engine in the foreground, without the daemon.

Each URL becomes (or resumes) a download in the same SQLite database the daemon uses; running
the same command again after any interruption picks up the recorded state.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from . import config, logs
from .errors import FreightError, InputError
from .models import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NEEDS_REFRESH,
    EXIT_OK,
    Download,
    DownloadState,
    exit_code,
)
from .store import Sealer, Store
from .transfer import SECRET_HEADERS, Transfer, parse_checksum


def configure(sub: Any) -> None:
    p = sub.add_parser("get", help="download URLs in the foreground (no daemon needed)")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-d", "--dir", help="folder to save into (default: your Downloads folder)")
    p.add_argument("-o", "--output", metavar="NAME", help="file name (one URL only)")
    p.add_argument("-x", "--connections", type=int, metavar="N",
                   help="connections per download, 1-64 (default: adaptive, from 8 up to 32)")
    p.add_argument("--limit", metavar="RATE", help="speed limit, e.g. 500K, 2M")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("--checksum", metavar="sha256=HEX", help="verify before the final rename")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--json", action="store_true", help="print one JSON object per download")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run_get)


def validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"not an http(s) URL: {url!r}")
    return url


def parse_headers(raw: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """'-H Name: value' lines → (plain headers, secret headers that are stored encrypted)."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for line in raw:
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or any(c in name for c in " \t\r\n") or "\n" in value:
            raise InputError(f"a header must look like 'Name: value', not {line!r}")
        (secret if name.lower() in SECRET_HEADERS else plain)[name] = value.strip()
    return plain, secret


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
        from . import secrets

        return secrets.sealer(paths)

    return Store(paths.database, sealer=LazySealer(factory))


def run_get(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True)
    try:
        urls = [validate_url(u) for u in args.urls]
        if args.output and len(urls) > 1:
            raise InputError("-o/--output names one file: give one URL with it")
        if args.connections is not None and not 1 <= args.connections <= 64:
            raise InputError("-x/--connections must be between 1 and 64")
        limit = config.parse_rate(args.limit) if args.limit else None
        headers, secret = parse_headers(args.header)
        checksum = None
        if args.checksum:
            algo, digest = parse_checksum(args.checksum)
            checksum = f"{algo}:{digest}"
        folder = os.path.abspath(os.path.expanduser(args.dir or config.default_download_dir()))
    except InputError as exc:
        err.print(f"freight get: {exc}")
        return 2

    paths = config.paths_from_env().ensure()
    logs.setup(paths.log_file)
    try:
        store = open_store(paths)
    except FreightError as exc:
        err.print(f"freight get: {exc}")
        return EXIT_FAILED
    settings = store.settings()
    results: list[int] = []
    try:
        for url in urls:
            code = _get_one(
                store, settings, url, folder, args, headers, secret, limit, checksum, err
            )
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
    download = store.find_unfinished(url, folder, args.output)
    try:
        if download is None:
            download = store.add(
                url, folder, requested_name=args.output, headers=headers,
                secret_headers=secret or None, connections=args.connections, limit=limit,
                checksum=checksum, insecure=args.insecure,
            )
        else:
            if not args.json:
                err.print(f"Resuming {download.name or url} ({download.done} bytes on disk)")
            changes: dict[str, Any] = {"limit": limit, "connections": args.connections}
            if checksum:
                changes["checksum"] = checksum
            if headers:
                changes["headers"] = headers
            store.update(download.id, **changes)
            if secret:
                store.set_secret_headers(download.id, secret)
        if download.state != DownloadState.ACTIVE:
            download = store.set_state(download.id, DownloadState.ACTIVE)
    except FreightError as exc:
        err.print(f"freight get: {exc}")
        return EXIT_FAILED

    engine = config.EngineSettings.from_settings(settings, connections=args.connections)
    transfer = Transfer(store, download.id, engine, on_notice=lambda m: err.print(f"[yellow]{m}"))
    started = time.monotonic()
    final = _run_with_display(transfer, store, download, args, err)
    elapsed = time.monotonic() - started
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
        size = _human(final.size or 0)
        err.print(f"[green]Saved[/green] {final.path} ({size} in {elapsed:.1f}s)")
    elif final.state == DownloadState.NEEDS_REFRESH:
        err.print(f"[yellow]The link expired[/yellow]: {final.error}. Get a fresh link and run "
                  f"`freight refresh {final.id} NEW_URL` or `freight get NEW_URL`.")
    elif final.state == DownloadState.PAUSED and final.error:
        err.print(f"[red]Paused[/red]: {final.error}. Run the same command again to resume.")
    elif code == EXIT_INTERRUPTED:
        err.print("Interrupted; progress saved. Run the same command again to resume.")
    else:
        err.print(f"[red]Failed[/red]: {final.error}")
    if final.state == DownloadState.PAUSED and final.error:
        return EXIT_FAILED
    return code


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def _run_with_display(
    transfer: Transfer, store: Store, download: Download, args: argparse.Namespace, err: Any
) -> Download:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    outcome: list[Download] = []
    # Wait on an Event, not on thread.join(): in CPython 3.11 a KeyboardInterrupt inside
    # join() marks the still-running thread as stopped, and we would exit before the pause.
    finished = threading.Event()

    def drive() -> None:
        try:
            outcome.append(transfer.run())
        finally:
            finished.set()

    thread = threading.Thread(target=drive, name="transfer")

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    show = not (args.json or args.quiet) and err.is_terminal
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[conns]} conn"), console=err,
        disable=not show, transient=False,
    )
    try:
        thread.start()
        with progress:
            task = progress.add_task(download.requested_name or download.url, total=None, conns=0)
            while not finished.is_set():
                try:
                    finished.wait(0.25)
                    p = transfer.progress()
                    name = store.get(download.id).name
                    progress.update(task, completed=p.done, total=p.size, conns=p.connections,
                                    description=name or download.url)
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


def main_get(argv: list[str] | None = None) -> int:  # pragma: no cover - convenience
    parser = argparse.ArgumentParser(prog="freight")
    configure(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_get())
