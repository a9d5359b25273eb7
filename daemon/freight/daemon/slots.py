"""The scheduler's two lanes of running downloads, without I/O: who holds which slot.

``max_active`` is there so that big downloads do not split the bandwidth between them; a
small file (its whole size known and at most ``small_size``) is done in one request and
takes no share worth guarding, so holding it back behind big ones only costs its latency
(browsers let such files through at once). Hence two lanes:

- big: downloads whose size is unknown or large, at most ``max_active`` of them;
- small: downloads known to be small, at most ``max_small`` of them (so that 10,000 queued
  tiny files do not open 10,000 connections; per-host caps still apply inside the engine).

Which downloads the scheduler offers each lane is its own rule (daemon/scheduler.py: the
small lane also tries those of unknown size, on the loop). A download that runs in the big
lane and whose probe shows it small is *promoted* to the small lane, and its big slot is
free for the next queued download; a promotion that finds the small lane full waits for
the next small slot to be released.

Invariants (tests/daemon/test_slots.py): an id is in at most one lane; admitting or
promoting never takes a lane past its cap. Lowering a cap leaves running downloads where
they are; the lane then only shrinks until it is under its new cap.
"""

from __future__ import annotations

from enum import Enum


class Lane(Enum):
    BIG = "big"
    SMALL = "small"


class Slots:
    def __init__(self, max_active: int, max_small: int) -> None:
        self.max_active = max_active
        self.max_small = max_small
        self._big: set[int] = set()
        self._small: set[int] = set()
        #: In the big lane, known small, waiting for a small slot (in promotion order).
        self._waiting: dict[int, None] = {}

    def set_limits(self, max_active: int, max_small: int) -> None:
        self.max_active = max_active
        self.max_small = max_small
        self._promote_waiting()

    # -- what the scheduler asks -----------------------------------------------------------

    @property
    def free_big(self) -> int:
        return max(0, self.max_active - len(self._big))

    @property
    def free_small(self) -> int:
        return max(0, self.max_small - len(self._small))

    def lane(self, download_id: int) -> Lane | None:
        if download_id in self._big:
            return Lane.BIG
        if download_id in self._small:
            return Lane.SMALL
        return None

    def counts(self) -> tuple[int, int]:
        """(big, small) downloads holding a slot."""
        return len(self._big), len(self._small)

    # -- changes ---------------------------------------------------------------------------

    def admit(self, download_id: int, *, small: bool, force: bool = False) -> Lane | None:
        """Give a starting download a slot: a small one its own lane first, else a big slot.
        None when no slot is free (it stays queued). ``force`` takes a big slot even past the
        cap (a download a previous daemon left active, resumed at start-up)."""
        if self.lane(download_id) is not None:
            raise ValueError(f"download {download_id} already holds a slot")
        if small and self.free_small > 0:
            self._small.add(download_id)
            return Lane.SMALL
        if self.free_big > 0 or force:
            self._big.add(download_id)
            if small:
                self._waiting[download_id] = None
            return Lane.BIG
        return None

    def promote(self, download_id: int) -> bool:
        """A running download turned out small: move it to the small lane (now, or once a
        small slot is free). Whether a big slot was freed now."""
        if download_id not in self._big:
            return False
        if self.free_small == 0:
            self._waiting[download_id] = None
            return False
        self._move_to_small(download_id)
        return True

    def release(self, download_id: int) -> Lane | None:
        """A download ended: free its slot (a promotion waiting for a small slot may take
        it). The lane it held, None when it held none."""
        lane = self.lane(download_id)
        if lane is Lane.BIG:
            self._big.discard(download_id)
            self._waiting.pop(download_id, None)
        elif lane is Lane.SMALL:
            self._small.discard(download_id)
            self._promote_waiting()
        return lane

    def _promote_waiting(self) -> None:
        while self._waiting and self.free_small > 0:
            download_id = next(iter(self._waiting))
            self._move_to_small(download_id)

    def _move_to_small(self, download_id: int) -> None:
        self._waiting.pop(download_id, None)
        self._big.discard(download_id)
        self._small.add(download_id)
