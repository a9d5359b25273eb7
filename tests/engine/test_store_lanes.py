"""Rules: a lane's read is the first queued downloads, in queue order, that the lane takes
(store.Lane), whatever mix of sizes the queue holds; and what SQLite does for it does not grow
with queued rows the lane cannot take (a fill runs each time a small file's slot frees)."""

from __future__ import annotations

import itertools
from pathlib import Path

from freight.models import Download, DownloadState
from freight.store import Lane, Store

SMALL = 1000


def takes(lane: Lane, d: Download) -> bool:
    if lane.small:
        fits = d.size <= lane.small_size if d.size is not None else lane.unknown_small
        return fits and d.id not in lane.ids
    bigger = d.size > lane.small_size if d.size is not None else not lane.unknown_small
    return bigger or d.id in lane.ids


def lanes(ids: tuple[int, ...]) -> list[Lane]:
    return [Lane(SMALL, small, unknown, chosen)
            for small, unknown, chosen in itertools.product((True, False), (True, False),
                                                            ((), ids))]


def test_each_lane_reads_what_it_takes_in_queue_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db")
    sizes = [None, 10, 5000, None, SMALL, SMALL + 1, None, 0, 10**9, None, 7, 6000]
    added = store.add_many([{"url": f"http://127.0.0.1/{n}", "dir": str(tmp_path),
                             "size": size} for n, size in enumerate(sizes)])
    store.move(added[5].id, "top")
    store.move(added[3].id, "top")
    store.set_state(added[1].id, DownloadState.PAUSED)  # not queued: never read
    store.start_queued(lambda read: [added[9].id])  # active now: never read
    queued = store.next_queued(100)
    assert added[1].id not in [d.id for d in queued] and queued[0].id == added[3].id
    chosen = (added[0].id, added[2].id, added[7].id, added[8].id, added[9].id)
    for lane in lanes(chosen):
        expected = [d for d in queued if takes(lane, d)]
        assert expected, lane
        for limit in (1, 2, 3, 100):
            got = store.next_queued_for_lane(
                limit, small_size=lane.small_size, small=lane.small,
                unknown_small=lane.unknown_small, ids=lane.ids)
            assert got == expected[:limit], (lane, limit)
    store.close()


def vm_steps(store: Store, lane: Lane) -> int:
    """SQLite's virtual machine instructions (in hundreds) of one read of the lane."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    store._db.set_progress_handler(tick, 100)
    store.next_queued_for_lane(
        4, small_size=lane.small_size, small=lane.small, unknown_small=lane.unknown_small,
        ids=lane.ids)
    store._db.set_progress_handler(None, 0)
    return steps[0]


def test_a_lane_read_does_not_pass_the_queued_rows_it_cannot_take(tmp_path: Path) -> None:
    store = Store(tmp_path / "freight.db")
    folder = str(tmp_path)

    def unknown(count: int) -> None:  # S4: the queue full of downloads of unknown size
        store.add_many([{"url": f"http://127.0.0.1/u{n}", "dir": folder}
                        for n in range(count)])

    unknown(50)
    big = store.add_many([{"url": f"http://127.0.0.1/b{n}", "dir": folder, "size": 10**9}
                          for n in range(5)])
    handed = (big[0].id, 3)
    reads = [Lane(SMALL, False, True), Lane(SMALL, False, True, handed),
             Lane(SMALL, True, False)]
    before = [vm_steps(store, lane) for lane in reads]
    unknown(2000)
    after = [vm_steps(store, lane) for lane in reads]
    for lane, was, now in zip(reads, before, after, strict=True):
        assert now <= was + 2, (lane, was, now)
    store.close()
