"""Single-stream mode: one connection from byte 0, for a server that cannot split (no ranges,
a wrong range, a 200 without validators) or a file of unknown size.

Such a download cannot resume from the middle: after a failure it starts again from byte 0
(and says so), and its recorded progress is for display only. The body is never allowed past
the size the server declared, nor past ``max_size``; a 206 of unknown total (``/*``) is never
taken for the whole file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from freight.engine import lifecycle
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.engine.shared import Attempt, Shared
from freight.errors import (
    FileChangedError,
    FreightError,
    ProtocolViolation,
    Stopped,
    TransientError,
)

log = logging.getLogger("freight.transfer")


class SingleStream:
    def __init__(
        self, shared: Shared, attempt: Attempt, *, notice: Callable[[str], None]
    ) -> None:
        self.shared = shared
        self.id = attempt.download_id
        self.settings = attempt.settings
        self.store = attempt.store
        self.source = attempt.source
        self.part = attempt.part
        self.url = attempt.url
        self.validators = attempt.validators
        self.headers = attempt.headers
        self.notice = notice
        self.policy = lifecycle.Policy.from_settings(attempt.settings)

    def run(self, reply: Reply) -> None:
        """Stream ``reply`` (the probe's) to its end; re-open from byte 0 after a failure."""
        s = self.shared
        failures = 0
        current: Reply | None = reply
        while True:
            s.check_stop()
            try:
                if current is None:
                    # Starting again from byte 0: the records of the bytes before go first.
                    self.store.clear_progress(self.id)
                    current = self.source.open(RangeRequest(self.url, headers=self.headers))
                    if current.validators.conflicts_with(self.validators):
                        raise FileChangedError("the file changed on the server")
                self._stream(current)
                return
            except FreightError as exc:
                decision = lifecycle.after_error(
                    exc, mode="single", failures=failures, had_data=s.had_data,
                    policy=self.policy,
                )
                if decision.verdict is not lifecycle.Verdict.RETRY:
                    raise
                failures = decision.count
                self.notice(
                    f"{exc}; the server cannot resume, starting again in {decision.delay:.1f}s"
                )
                if s.stop.wait(decision.delay):
                    raise Stopped("stopped") from exc
            finally:
                if current is not None and current is not reply:
                    current.close()
                current = None

    def _stream(self, reply: Reply) -> None:
        s, part = self.shared, self.part
        if reply.ranged and reply.size is None:
            # RFC 9110 §14.4: "bytes 0-N/*" is a part of a file whose length is unknown; the
            # end of its body is not the end of the file, so it is never saved as the file.
            raise ProtocolViolation(
                f"the server sent bytes {reply.start}-{(reply.end or 1) - 1} of a file of "
                "unknown total size (Content-Range .../*); a part is never saved as the file"
            )
        with s.lock:
            s.done = 0
            s.alive = 1
        part.truncate(0)
        if reply.size:
            part.preallocate(reply.size)
        offset = 0
        last_save = time.monotonic()
        limit = self.settings.max_size
        try:
            for chunk in reply.chunks(
                self.settings.read_size, max_expansion=self.settings.max_expansion
            ):
                s.check_stop()
                if reply.size is not None and offset + len(chunk) > reply.size:
                    raise ProtocolViolation("the server sent more bytes than it declared")
                if limit is not None and offset + len(chunk) > limit:
                    raise ProtocolViolation(f"the file is over the {limit}-byte limit")
                s.throttle(len(chunk))
                part.pwrite(chunk, offset)
                offset += len(chunk)
                now = time.monotonic()
                with s.lock:
                    s.done = offset
                    s.had_data = True
                    s.speed.add(now, offset)
                if now - last_save >= self.settings.checkpoint_interval:
                    # For display only: a single stream restarts from 0 on resume.
                    self.store.save_progress(self.id, [], offset)
                    last_save = now
        except TransientError:
            s.check_stop()
            raise
        finally:
            with s.lock:
                s.alive = 0
        if reply.size is not None and offset != reply.size:
            raise TransientError(f"the connection ended at byte {offset} of {reply.size}")
        if reply.size is None:
            part.truncate(offset)
            s.size = offset
            self.store.update(self.id, size=offset)
