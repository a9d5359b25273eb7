"""The segment planner: which byte ranges of a file each connection fetches.

Sans-I/O: no sockets, no clocks, no threads. The transfer holds one lock around every call.

Theory of operation
-------------------
The file ``[0, size)`` is cut into *pieces*. A piece ``[start, end)`` has one owner at most (a
worker) and three marks: ``start <= pos <= claimed <= end``. ``[start, pos)`` is written to
disk; ``[pos, claimed)`` has been handed to the owner to write but not yet confirmed. Pieces are
kept sorted and always tile the file exactly: no gap, no overlap.

A free worker calls :meth:`Planner.assign`. It gets the largest piece that nobody owns and that
still has bytes to fetch; failing that, it *splits* the in-flight piece with the most bytes left
(when at least twice ``min_split`` remain): the owner keeps the first half, the new worker takes
the second half. This is dynamic segmentation with work stealing: fast connections end up
fetching more of the file, and the last bytes are never left to one slow connection.

The owner of a piece streams bytes from ``pos`` on. For each chunk it reads, it calls
:meth:`claim` to learn how many of them still belong to its piece (the piece may have shrunk by
a split meanwhile), writes those, then calls :meth:`commit`. When ``claim`` returns fewer bytes
than asked, the owner has reached the end of its piece and must stop reading (its response runs
on into bytes another worker now owns). When a worker stops, for any reason, it calls
:meth:`release`; what it had not committed becomes an unowned gap again.

:meth:`snapshot` returns the pieces as :class:`~freight.models.Segment` rows for a checkpoint;
only committed bytes (``pos``) are reported, so recorded progress never exceeds what was
written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from freight.models import Segment


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

    @property
    def unclaimed(self) -> int:
        return self.end - self.claimed


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
        piece = Piece(self._next_id, start, end, pos, pos, owner)
        self._next_id += 1
        return piece

    def _piece(self, piece_id: int) -> Piece:
        for piece in self._pieces:
            if piece.id == piece_id:
                return piece
        raise PlannerError(f"no piece {piece_id}")

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

    def has_work(self) -> bool:
        """True while a new worker could get something to do from assign()."""
        if any(p.owner is None and p.pos < p.end for p in self._pieces):
            return True
        return any(p.owner is not None and p.unclaimed >= 2 * self.min_split for p in self._pieces)

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

    def assign(self, worker: int) -> Assignment | None:
        """Give ``worker`` a range to fetch, or None when nothing is left to hand out."""
        if any(p.owner == worker for p in self._pieces):
            raise PlannerError(f"worker {worker} already owns a piece")
        gaps = [p for p in self._pieces if p.owner is None and p.pos < p.end]
        if gaps:
            piece = max(gaps, key=lambda p: (p.end - p.pos, -p.start))
            piece.owner = worker
            piece.claimed = piece.pos
            return Assignment(piece.id, piece.pos, piece.end)
        busy = [p for p in self._pieces if p.owner is not None]
        if not busy:
            return None
        victim = max(busy, key=lambda p: (p.unclaimed, -p.start))
        if victim.unclaimed < 2 * self.min_split:
            return None
        mid = victim.claimed + victim.unclaimed // 2
        new = self._new_piece(mid, victim.end, mid, owner=worker)
        victim.end = mid
        self._pieces.insert(self._pieces.index(victim) + 1, new)
        return Assignment(new.id, new.start, new.end)

    def claim(self, piece_id: int, n: int) -> int:
        """The owner read ``n`` more bytes; returns how many of them it may write (maybe 0).

        The bytes go at offset ``claimed`` (the caller tracks it as its write offset). A return
        below ``n`` means the piece ends there: write those bytes, commit, stop reading.
        """
        if n < 0:
            raise PlannerError("n must be >= 0")
        piece = self._piece(piece_id)
        if piece.owner is None:
            raise PlannerError(f"piece {piece_id} has no owner")
        allowed = min(n, piece.end - piece.claimed)
        piece.claimed += allowed
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
        piece.claimed = piece.pos
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
