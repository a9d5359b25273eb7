"""``freight-host``: the stdio bridge between the browser extension and the daemon.

The browser starts this process when the extension calls ``runtime.connectNative`` (or
``sendNativeMessage``) and talks to it with native messaging framing on stdin/stdout
(:mod:`freight_host.framing`). :func:`serve` decodes the frames and hands each message to the
:class:`~freight_host.relay.Relay`, which carries it to the daemon and the answers back
(:mod:`freight_host.link` finds, starts and connects to the daemon).

stdout carries frames and nothing else: :func:`main` keeps a private duplicate of fd 1 for
frames and points fd 1 (and ``sys.stdout``) at stderr, so a stray ``print`` or a child process
cannot corrupt the stream. Logs go to ``freight-host.log`` in Freight's log folder.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from freight.config import Paths, paths_from_env
from freight.logs import PrivateRotatingFileHandler
from freight.redact import RedactingFilter
from freight.rpc import PARSE_ERROR

from freight_host import __version__
from freight_host.framing import FrameDecoder, FramingError
from freight_host.relay import FrameWriter, Relay, response_error

log = logging.getLogger("freight_host")


def framing_error_response(err: FramingError) -> dict[str, Any]:
    return response_error(None, PARSE_ERROR, "parse_error", err.message,
                          reason=err.kind, fatal=err.fatal)


def serve(in_fd: int, out: FrameWriter, relay: Relay, decoder: FrameDecoder) -> int:
    """Read frames until stdin closes. Returns the exit code."""
    while not out.closed:
        try:
            chunk = os.read(in_fd, 65536)
        except OSError as exc:
            log.info("stdin failed: %s", exc)
            break
        if not chunk:
            break
        for item in decoder.feed(chunk):
            if isinstance(item, FramingError):
                log.warning("bad frame from the browser: %s", item)
                out.send(framing_error_response(item))
                if item.fatal:
                    return 1
            else:
                relay.handle(item)
    error = decoder.eof()
    if error is not None:
        log.warning("%s", error)
    log.info("stdin closed; exiting")
    return 0


def _setup_logging(paths: Paths) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    try:
        # The browser may start the host before any daemon ran: its folders and its log are
        # made here as private as the daemon makes them (the log names signed URLs).
        paths.ensure()
        handler: logging.Handler = PrivateRotatingFileHandler(
            paths.host_log_file, maxBytes=1024 * 1024, backupCount=2, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)  # stderr: the browser's log, never stdout
        handler.addFilter(RedactingFilter())  # the file handler has its own
    handler.setFormatter(logging.Formatter(
        "%(asctime)s freight-host[%(process)d] %(levelname)s %(message)s"))
    root.addHandler(handler)


def _claim_stdout() -> int:
    """Keep a private fd for frames; point fd 1 and sys.stdout at stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if sys.platform == "win32":  # pragma: no cover - no text-mode translation of frames
        import msvcrt

        msvcrt.setmode(0, os.O_BINARY)
        msvcrt.setmode(out_fd, os.O_BINARY)
    return out_fd


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_fd = _claim_stdout()
    paths = paths_from_env()
    _setup_logging(paths)
    # Chrome passes the caller's origin (chrome-extension://ID/) and, on Windows, a
    # --parent-window; Firefox passes the manifest path and the extension id.
    log.info("started (host %s, python %s) by %s", __version__, sys.executable,
             " ".join(args) or "an unknown caller")
    out = FrameWriter(out_fd)
    relay = Relay(paths, out)
    try:
        return serve(0, out, relay, FrameDecoder())
    except KeyboardInterrupt:
        return 130
    finally:
        relay.close()
        logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
