"""Logging set-up shared by the daemon, the CLI and the native host: a file, maybe stderr.

Log lines name URLs, and a signed URL carries its credentials in its query: every log file is
created 0600 whatever the umask (a rotation too), in a folder made 0700 (``config``). Every
handler made here redacts what it writes (:class:`freight.redact.RedactingFilter`): no
credential header value or URL userinfo reaches a log, whatever the message quotes.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import stat
import sys
from pathlib import Path
from typing import Any

from freight.config import private_file, private_folder
from freight.redact import RedactingFilter

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are only ever readable by their owner, and that
    writes no secret (the daemon's, the CLI's and freight-host's logs alike).

    It knows the size of its file instead of asking per record: the stock handler stats the
    file's name twice, seeks its stream and formats the record twice for every line (the
    daemon logs one per completed download). The size is read once when the file is opened
    (at start and after each rotation) and counted up by the bytes written since; what
    another process appends meanwhile (the CLI logs to the same file) is not counted, which
    can only make a rotation late, never early. Whether it is a regular file is also seen
    then, once: anything else (/dev/null, a FIFO) is never rotated (bpo-45401).
    """

    def __init__(self, filename: Path, **kwargs: Any) -> None:
        self._size = 0  # bytes in the file as last opened, plus those written since
        self._rotates = False  # a regular file: see _open
        self._codec = ("utf-8", "strict")  # the stream's encoding and errors, once opened
        private_folder(filename.parent)
        super().__init__(filename, **kwargs)
        self.addFilter(RedactingFilter())

    def _open(self) -> io.TextIOWrapper:
        fd = private_file(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND)
        found = os.fstat(fd)
        self._rotates = stat.S_ISREG(found.st_mode)
        self._size = found.st_size
        stream = open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115
        assert isinstance(stream, io.TextIOWrapper)  # a text mode ("a")
        # What the stream encodes with ("locale", the default, resolved to its encoding).
        self._codec = (stream.encoding, stream.errors or "strict")
        return stream

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 - logging's
        if self.stream is None:
            self.stream = self._open()
        return self._rollover_for(len(self._encoded(self.format(record) + self.terminator)))

    def _rollover_for(self, size: int) -> bool:
        # Never for an empty file: a record bigger than maxBytes would only leave empty
        # backups behind.
        return self._rotates and self._size > 0 and 0 < self.maxBytes <= self._size + size

    def _encoded(self, text: str) -> bytes:
        return text.encode(*self._codec)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator  # formatted once
            size = len(self._encoded(line))
            if self.stream is None:
                self.stream = self._open()
            if self._rollover_for(size):
                self.doRollover()  # closes the stream and opens the next (unless delay)
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(line)
            self.flush()
            self._size += size
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def setup(log_file: Path, *, stderr_level: int | None = None, level: int = logging.INFO) -> None:
    # No format here names the process id: without this every record asks the kernel for
    # it (getpid), on whichever thread logs.
    logging.logProcesses = False
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
