"""What a transfer asks of a source: one byte range of one URL, with what it knows of the file.

One value, handed unchanged through the seam (:class:`~.source.RangeSource`) to whichever
reader makes the request, so that every reader sends the same Range and If-Range and checks
the reply against the same expectations (:func:`~.validate.validate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from freight.engine.http.validate import Validators, range_header


@dataclass(frozen=True)
class RangeRequest:
    """``[start, end)`` of ``url`` (``end`` None: to the end of the file).

    ``validators`` and ``size`` are what the download already knows: a reply must match them
    (RFC 9110 §13.1.5: a 200 to an If-Range request means the file changed). ``headers`` are
    the download's own (cookies, referrer, ...), without Range and If-Range.
    """

    url: str
    start: int = 0
    end: int | None = None
    validators: Validators | None = None
    size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def if_range(self) -> str | None:
        """The If-Range value (a strong ETag, else Last-Modified), when there is one."""
        return self.validators.if_range() if self.validators is not None else None

    def wire_headers(self) -> dict[str, str]:
        """The headers as sent: the download's, then Range (RFC 9110 §14.2) and If-Range.
        A Range or If-Range among the download's own is dropped: they are the engine's to set,
        and two of them would make the server's answer ambiguous."""
        sent = {k: v for k, v in self.headers.items() if k.lower() not in ("range", "if-range")}
        sent["Range"] = range_header(self.start, self.end)
        if_range = self.if_range()
        if if_range:
            sent["If-Range"] = if_range
        return sent
