"""Logging set-up shared by the daemon, the CLI and the native host: a file, maybe stderr.

Log lines name URLs, and a signed URL carries its credentials in its query: every log file is
created 0600 whatever the umask (a rotation too), in a folder made 0700 (``config``). Every
handler made here redacts what it writes (:class:`freight.redact.RedactingFilter`): no
credential header value or URL userinfo reaches a log, whatever the message quotes.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import IO, Any

from freight.config import private_file, private_folder
from freight.redact import RedactingFilter

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are only ever readable by their owner, and that
    writes no secret (the daemon's, the CLI's and freight-host's logs alike)."""

    def __init__(self, filename: Path, **kwargs: Any) -> None:
        private_folder(filename.parent)
        super().__init__(filename, **kwargs)
        self.addFilter(RedactingFilter())

    def _open(self) -> IO[Any]:
        fd = private_file(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115


def setup(log_file: Path, *, stderr_level: int | None = None, level: int = logging.INFO) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    try:
        file_handler = PrivateRotatingFileHandler(
            log_file, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(file_handler)
    except OSError as exc:
        print(f"freight: cannot write the log file {log_file}: {exc}", file=sys.stderr)
    if stderr_level is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(stderr_level)
        stream.setFormatter(logging.Formatter(_FORMAT))
        stream.addFilter(RedactingFilter())
        root.addHandler(stream)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
