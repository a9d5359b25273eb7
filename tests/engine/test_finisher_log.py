"""The log line each completed download writes (finish.log_completed, on the finisher's
thread): logs.PrivateRotatingFileHandler formats it once and knows its file's size instead
of asking per record, rotates at maxBytes as the stock handler does, and never rotates
what is not a regular file (bpo-45401). Real files, a real FIFO, a real process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from freight.logs import PrivateRotatingFileHandler


class CountingFormatter(logging.Formatter):
    calls = 0

    def format(self, record: logging.LogRecord) -> str:
        CountingFormatter.calls += 1
        return super().format(record)


def record(message: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": message, "levelno": logging.INFO})


def test_a_record_is_formatted_once(tmp_path: Path) -> None:
    handler = PrivateRotatingFileHandler(tmp_path / "freight.log", maxBytes=1 << 20)
    handler.setFormatter(CountingFormatter())
    CountingFormatter.calls = 0
    try:
        for n in range(3):
            handler.emit(record(f"line {n}"))
    finally:
        handler.close()
    assert CountingFormatter.calls == 3
    assert (tmp_path / "freight.log").read_text() == "line 0\nline 1\nline 2\n"


def test_the_size_counted_is_what_the_file_held_plus_what_was_written(tmp_path: Path) -> None:
    log = tmp_path / "freight.log"
    log.write_text("o" * 149 + "\n")  # 150 bytes from an earlier run
    handler = PrivateRotatingFileHandler(log, maxBytes=400, backupCount=2, encoding="utf-8")
    try:
        handler.emit(record("é" * 49))  # 99 bytes: 249 in all
        handler.emit(record("a" * 99))  # 100 bytes: 349 in all
        assert not (tmp_path / "freight.log.1").exists()
        handler.emit(record("b" * 99))  # would make 449 >= 400: rotated first
    finally:
        handler.close()
    assert (tmp_path / "freight.log.1").read_text() == "o" * 149 + "\n" + "é" * 49 + "\n" + \
        "a" * 99 + "\n"
    assert log.read_text() == "b" * 99 + "\n"


def test_a_log_that_is_not_a_regular_file_is_never_rotated(tmp_path: Path) -> None:
    fifo = tmp_path / "freight.log"
    os.mkfifo(fifo, 0o600)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that the writer's open returns
    try:
        handler = PrivateRotatingFileHandler(fifo, maxBytes=50, backupCount=2)
        try:
            for _ in range(4):
                handler.emit(record("x" * 40))
        finally:
            handler.close()
        assert os.read(reader, 1000) == ("x" * 40 + "\n").encode() * 4
    finally:
        os.close(reader)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["freight.log"]


def test_records_ask_for_no_process_id_once_logs_are_set_up(tmp_path: Path) -> None:
    # A process of its own: logs.setup replaces the root handlers, which pytest's capture uses.
    code = ("import logging, sys; from pathlib import Path; from freight import logs; "
            "logs.setup(Path(sys.argv[1])); "
            "print(logging.makeLogRecord({'msg': 'x'}).process)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "logs" / "freight.log")],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "None"
