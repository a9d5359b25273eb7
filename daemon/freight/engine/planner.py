"""The segment planner: which byte ranges of a file each connection fetches.

Sans-I/O: no sockets, no clocks, no threads. The transfer holds one lock around every call.

Theory of operation
-------------------
The file ``[0, size)`` is cut into *pieces*. A piece ``[start, end)`` has one owner at most (a
worker) and four marks: ``start <= pos <= claimed <= asked <= end``. ``[start, pos)`` is
written to disk; ``[pos, claimed)`` has been handed to the owner to write but not yet
confirmed; ``[claimed, asked)`` is *in flight*: the owner has asked the server for it and the
server may be sending it right now. Pieces are kept sorted and always tile the file exactly:
no gap, no overlap.

The owner never asks for its whole piece at once: it asks for a *window* (:meth:`window`,
sized by :func:`window_size`: about a second of that connection's throughput), reads it to
its end, then asks for the next one on the same kept-alive connection.

A free worker calls :meth:`Planner.assign`. It gets the largest piece that nobody owns and that
still has bytes to fetch; failing that, it *splits* the in-flight piece with the most bytes not
yet asked for: the owner keeps the first half of what it has left (at least what is in
flight), the new worker takes the rest. A split never cuts into a window in flight: the
server is never made to send bytes that their first reader will not keep, so no byte is
sent twice (issue 12: whole-segment requests cut by splits cost 1.25–3.6× the file). This is
dynamic segmentation with work stealing: fast connections end up fetching more of the file,
and the last bytes are never left to one slow connection beyond its last window.

On a slow-to-answer server a split also has to pay for the new connection's wait for its
first byte (``lead``, in seconds): a piece whose owner, at its current ``rate``, would fetch
its remaining bytes before a second connection could halve the time is not split (see
:meth:`Planner._worth_splitting`).

The owner of a piece streams bytes from ``pos`` on. For each chunk it reads, it calls
:meth:`claim` to learn how many of them still belong to its piece, writes those, then calls
:meth:`commit`. When a worker stops, for any reason, it calls :meth:`release`; what it had
not committed becomes an unowned gap again.

:meth:`snapshot` returns the pieces as :class:`~freight.models.Segment` rows for a checkpoint;
only committed bytes (``pos``) are reported, so recorded progress never exceeds what was
written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from freight.models import Segment

#: A window holds about this many seconds of its connection's throughput: long enough that
#: requests stay rare (one a second per connection at most), short enough that the last
#: window of a download, which no split can share, ends soon.
WINDOW_SECONDS = 1.0
#: A window is never below the min split size (1 MiB by default): few requests, however
#: slow the connection. It holds at least this many head latencies, so that waiting for the
#: next window's head costs at most about a ninth of a connection's time on a slow server.
WINDOW_LATENCIES = 8
#: A connection's first window, before its rate is known: its fair share of the file, at
#: most this much.
FIRST_WINDOW = 4 << 20
MAX_WINDOW = 1 << 30


def window_size(
    rate: float | None, latency: float, *, min_split: int, share: int
) -> int:
    """How many bytes a connection asks for next. ``rate``: its bytes per second over its
    last window (None for its first); ``latency``: seconds a response head takes;
    ``share``: the bytes left divided by the connections wanted."""
    if rate is None:
        return max(min_split, min(share, FIRST_WINDOW))
    seconds = max(WINDOW_SECONDS, WINDOW_LATENCIES * latency)
    return int(min(MAX_WINDOW, max(min_split, rate * seconds)))


class PlannerError(Exception):
    """A caller broke the planner's rules (a bug, never an input problem)."""


@dataclass
class Piece:
    id: int
    start: int
    end: int
    pos: int
    claimed: int
    owner: int | None = None
    asked: int = 0  # the end of the window in flight (== claimed when none is)
    rate: float | None = None  # the owner's bytes per second, when it knows

    @property
    def unasked(self) -> int:
        """Bytes nobody has asked the server for yet: what a split may take."""
        return self.end - self.asked


@dataclass(frozen=True)
class Assignment:
    """Fetch ``[start, end)`` for piece ``piece_id``; ``end`` may later shrink (see claim)."""

    piece_id: int
    start: int
    end: int


class Planner:
    def __init__(
        self, size: int, min_split: int, segments: Iterable[Segment] | None = None
    ) -> None:
        if size < 0:
            raise PlannerError("size must be >= 0")
        if min_split < 1:
            raise PlannerError("min_split must be >= 1")
        self.size = size
        self.min_split = min_split
        self._next_id = 0
        self._pieces: list[Piece] = []
        #: False when stored segments did not tile the file and were discarded.
        self.restored = False
        rows = sorted(segments or (), key=lambda s: s.start)
        if rows and self._tiles(rows):
            for s in rows:
                self._pieces.append(self._new_piece(s.start, s.end, s.pos))
            self.restored = True
        elif size > 0:
            self._pieces.append(self._new_piece(0, size, 0))

    def _tiles(self, rows: list[Segment]) -> bool:
        at = 0
        for s in rows:
            if s.start != at or not (s.start <= s.pos <= s.end) or s.end <= s.start:
                return False
            at = s.end
        return at == self.size

    def _new_piece(self, start: int, end: int, pos: int, owner: int | None = None) -> Piece:
        piece = Piece(self._next_id, start, end, pos, pos, owner, asked=pos)
        self._next_id += 1
        return piece

    def _piece(self, piece_id: int) -> Piece:
        for piece in self._pieces:
            if piece.id == piece_id:
                return piece
        raise PlannerError(f"no piece {piece_id}")

    def _owned(self, piece_id: int) -> Piece:
        piece = self._piece(piece_id)
        if piece.owner is None:
            raise PlannerError(f"piece {piece_id} has no owner")
        return piece

    # -- queries ---------------------------------------------------------------------------

    @property
    def done(self) -> int:
        """Bytes committed to disk."""
        return sum(p.pos - p.start for p in self._pieces)

    @property
    def complete(self) -> bool:
        return all(p.pos == p.end for p in self._pieces)

    @property
    def owners(self) -> int:
        return sum(1 for p in self._pieces if p.owner is not None)

    def has_work(self, lead: float = 0.0) -> bool:
        """True while a new worker could get something to do from ``assign(worker, lead)``."""
        if any(p.owner is None and p.pos < p.end for p in self._pieces):
            return True
        return any(self._splittable(p, lead) for p in self._pieces)

    def _splittable(self, p: Piece, lead: float) -> bool:
        return (
            p.owner is not None
            and p.end - p.claimed >= 2 * self.min_split
            and p.unasked >= self.min_split
            and self._worth_splitting(p, lead)
        )

    @staticmethod
    def _worth_splitting(p: Piece, lead: float) -> bool:
        """Whether a second connection, whose first byte comes ``lead`` seconds from now,
        ends the piece sooner. Alone, the owner needs R / v for the R bytes it has left; split
        in half, the piece ends after about lead + R / 2v. The split pays when R > 2 v lead;
        in particular, never when the owner would have fetched them all before the new
        connection's first byte (R <= v lead)."""
        if p.rate is None or lead <= 0:
            return True
        return p.end - p.claimed > 2 * p.rate * lead

    def end_of(self, piece_id: int) -> int:
        return self._piece(piece_id).end

    def snapshot(self) -> list[Segment]:
        """The pieces as segments, adjacent finished ones merged, for a checkpoint."""
        out: list[Segment] = []
        for p in self._pieces:
            last = out[-1] if out else None
            if last is not None and last.pos == last.end and p.pos == p.end:
                last.end = last.pos = p.end
            else:
                out.append(Segment(p.start, p.end, p.pos))
        return out

    # -- moves -----------------------------------------------------------------------------

    def assign(self, worker: int, lead: float = 0.0) -> Assignment | None:
        """Give ``worker`` a range to fetch, or None when nothing is left to hand out.
        ``lead``: seconds a new connection waits for its first byte (see _worth_splitting)."""
        if any(p.owner == worker for p in self._pieces):
            raise PlannerError(f"worker {worker} already owns a piece")
        gaps = [p for p in self._pieces if p.owner is None and p.pos < p.end]
        if gaps:
            piece = max(gaps, key=lambda p: (p.end - p.pos, -p.start))
            piece.owner = worker
            piece.claimed = piece.asked = piece.pos
            piece.rate = None
            return Assignment(piece.id, piece.pos, piece.end)
        victims = [p for p in self._pieces if self._splittable(p, lead)]
        if not victims:
            return None
        victim = max(victims, key=lambda p: (p.unasked, -p.start))
        # Half of what the owner has left, but never inside the window it has in flight.
        mid = max(victim.asked, victim.claimed + (victim.end - victim.claimed) // 2)
        new = self._new_piece(mid, victim.end, mid, owner=worker)
        victim.end = mid
        self._pieces.insert(self._pieces.index(victim) + 1, new)
        return Assignment(new.id, new.start, new.end)

    def window(self, piece_id: int, n: int, rate: float | None = None) -> tuple[int, int] | None:
        """The owner is about to ask the server for up to ``n`` more bytes of its piece:
        returns ``(start, stop)`` to ask for, or None when the piece has nothing left.
        From now on no split cuts into ``[start, stop)``. ``rate``: the owner's bytes per
        second so far, when it knows (it informs the split rule for slow servers)."""
        if n < 1:
            raise PlannerError("a window holds at least one byte")
        piece = self._owned(piece_id)
        if piece.claimed >= piece.end:
            return None
        piece.asked = min(piece.end, max(piece.asked, piece.claimed + n))
        if rate is not None:
            piece.rate = rate
        return piece.claimed, piece.asked

    def claim(self, piece_id: int, n: int) -> int:
        """The owner read ``n`` more bytes; returns how many of them it may write (maybe 0).

        The bytes go at offset ``claimed`` (the caller tracks it as its write offset). A return
        below ``n`` means the piece ends there: write those bytes, commit, stop reading.
        """
        if n < 0:
            raise PlannerError("n must be >= 0")
        piece = self._owned(piece_id)
        allowed = min(n, piece.end - piece.claimed)
        piece.claimed += allowed
        piece.asked = max(piece.asked, piece.claimed)
        return allowed

    def commit(self, piece_id: int, n: int) -> None:
        """``n`` claimed bytes are written (in order); they now count as done."""
        piece = self._piece(piece_id)
        if n < 0 or piece.pos + n > piece.claimed:
            raise PlannerError(f"commit of {n} bytes beyond the claim of piece {piece_id}")
        piece.pos += n

    def release(self, piece_id: int) -> None:
        """The owner stopped. Claimed but uncommitted bytes are given up."""
        piece = self._piece(piece_id)
        piece.owner = None
        piece.claimed = piece.asked = piece.pos
        piece.rate = None
        self._merge_around(piece)

    def _merge_around(self, piece: Piece) -> None:
        # An unfinished piece followed by an untouched unowned one: their missing bytes are
        # contiguous, so one request can fetch both. Merging saves a connection setup.
        i = self._pieces.index(piece)
        if piece.pos < piece.end and i + 1 < len(self._pieces):
            nxt = self._pieces[i + 1]
            if nxt.owner is None and nxt.pos == nxt.start:
                piece.end = nxt.end
                self._pieces.pop(i + 1)
