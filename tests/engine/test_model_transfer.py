"""A model of one download against a misbehaving server, explored by hypothesis (stateful).

Every run is a real :class:`~freight.engine.transfer.Transfer` (its planner, its lifecycle
decisions, its worker threads) over a real SQLite store and a real ``.part`` in a tmp dir,
against a :class:`ModelServer`: a :class:`~freight.engine.http.scripted.ScriptedSource` that
also knows every version of the file it ever served. The machine's steps script what the
server does at the N-th request of the next run (drop the connection after some bytes, change
the file with a strong, weak or no validator, answer a range with a 200 or a wrong range, a
403/410, a 503/429), and what happens to Freight (a graceful shutdown, a ``kill -9`` whose
on-disk state is then restored, the ``.part`` deleted while stopped). Each ``run`` step then
drives a fresh Transfer to its end; the teardown resumes until the download completes.

Invariants, checked at every request the server sees and after every run:
- recorded progress (the synced segments, and the unsynced record a resume would trust)
  never covers a byte that is not on disk holding ONE version's bytes (never a zero-filled
  gap, never a splice), and ``done`` never exceeds the file on disk;
- a completed download is byte-for-byte one version the server served, and its recorded
  size is that version's size;
- a stop ends the run: after it, at most one request per connection reaches the server, and
  ``run`` returns within a generous bound;
- no worker thread of the transfer is alive after ``run`` returns;
- the server never sees more requests in flight at once than the host's cap (HostCaps).

Not scriptable with today's ScriptedSource, to be added as steps once it can (each a rule
like those below, plus its invariant): a cross-origin redirect (no Cookie/Authorization/user
header reaches the second origin), a 1xx interim response before the head, a ``*`` total in
Content-Range (``bytes 0-N/*`` is not a size), a short 206 (continued, never finalised), a
Retry-After honoured as the least wait, a stalled read.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.config import EngineSettings
from freight.engine import files
from freight.engine.http.head import Head
from freight.engine.http.reply import Reply
from freight.engine.http.request import RangeRequest
from freight.engine.http.scripted import Rule, ScriptedSource
from freight.engine.http.source import Lane
from freight.engine.limits import HostCaps
from freight.engine.transfer import Transfer
from freight.models import DownloadState
from freight.states import StateKeeper
from freight.store import Store
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

URL = "http://files.test/data.bin"
HOST = "files.test"
CONNECTIONS = 4
HOST_CAP = 3  # below CONNECTIONS: the host's cap, not the download's, must bound the workers
SETTINGS = EngineSettings(
    connections=CONNECTIONS, max_connections=CONNECTIONS, adaptive=False, min_split_size=256,
    read_size=128, checkpoint_interval=0.01, retry_base=0.0, retry_max=0.0, max_tries=4,
    stall_timeout=2.0, connect_timeout=2.0,
)
RUN_BOUND = 20.0  # seconds: a run that takes longer is stuck, not slow
STOP_BOUND = 1.0  # seconds: any stop completes within a second (DESIGN, rules of the engine)
ENDED = {
    DownloadState.COMPLETED, DownloadState.PAUSED, DownloadState.FAILED,
    DownloadState.NEEDS_REFRESH, DownloadState.ACTIVE,  # active: a shutdown leaves it so
}


@dataclass(frozen=True)
class Version:
    """One version of the file: its bytes and the validators the server sends with them."""

    data: bytes
    etag: str | None
    last_modified: str | None
    kind: str  # strong, weak, modified (Last-Modified only) or none


def version_bytes(size: int, n: int) -> bytes:
    # Every byte depends on the version number and on its offset: a splice or a misplaced
    # block of any version shows as a mismatch.
    return bytes(((i * 131 + n * 71 + (i >> 8) * 17) ^ (n * 29)) % 256 for i in range(size))


def make_version(n: int, size: int, kind: str) -> Version:
    data = version_bytes(size, n)
    date = f"Mon, 0{1 + n % 9} Jan 2024 00:00:{n % 60:02d} GMT"
    if kind == "strong":
        return Version(data, f'"v{n}"', None, kind)
    if kind == "weak":
        return Version(data, f'W/"v{n}"', None, kind)
    if kind == "modified":
        return Version(data, None, date, kind)
    return Version(data, None, None, kind)


class ModelServer(ScriptedSource):
    """A ScriptedSource whose versions carry their own Last-Modified, which counts the
    requests in flight and calls ``check`` on every request (the invariants)."""

    def __init__(self, first: Version) -> None:
        super().__init__(first.data, etag=first.etag, last_modified=first.last_modified)
        self.versions: list[Version] = [first]
        self._modified: dict[int, str | None] = {id(first.data): first.last_modified}
        self._count = threading.Lock()
        self.inflight = 0
        self.peak = 0
        self.check: Callable[[], None] = lambda: None
        self.stop_index: int | None = None  # len(requests) when a stop was asked
        self.stopped_at = 0.0  # time.monotonic() of that stop

    def add_version(self, version: Version) -> None:
        self.versions.append(version)
        self._modified[id(version.data)] = version.last_modified

    def open(self, asked: RangeRequest, *, lane: Lane | None = None) -> Reply:
        self.check()
        with self._count:
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
        try:
            reply = super().open(asked, lane=lane)
        except BaseException:
            self._done()
            raise
        reply.on_close = lambda _reply: self._done()
        return reply

    def _done(self) -> None:
        with self._count:
            self.inflight -= 1

    def _answer(
        self, ranged: bool, headers: dict[str, str], start: int, end: int | None, rule: Rule,
        data: bytes, etag: str | None, modified: str | None, url: str,
    ) -> tuple[Head, int, int]:
        # The version's own Last-Modified, taken with its bytes (never another version's).
        return super()._answer(
            ranged, headers, start, end, rule, data, etag, self._modified[id(data)], url
        )


def recorded_ranges(store: Store, download_id: int) -> list[tuple[int, int]]:
    """Every byte range a resume could trust: the synced segments and the unsynced record."""
    ranges = [(s.start, s.pos) for s in store.load_segments(download_id) if s.pos > s.start]
    ranges += [
        (s.start, s.pos) for s in store.resume_segments(download_id, files.boot_id())
        if s.pos > s.start
    ]
    return ranges


K = st.integers(0, 8)
#: What the server (or the user) does at the K-th request of a run: (method, *arguments).
FAULTS = st.one_of(
    st.tuples(st.just("drop"), K, st.integers(0, 3000)),
    st.tuples(st.just("change"), K, st.sampled_from(["strong", "weak", "modified", "none"]),
              st.booleans(), st.integers(1, 6000)),
    st.tuples(st.just("whole_file_to_a_range"), K),
    st.tuples(st.just("wrong_range"), st.integers(1, 8), st.integers(1, 500)),
    st.tuples(st.just("forbidden"), K, st.sampled_from([403, 410])),
    st.tuples(st.just("busy"), K, st.sampled_from([503, 429]), st.integers(1, 3)),
    st.tuples(st.just("shutdown"), st.integers(0, 10)),
    st.tuples(st.just("kill"), st.integers(0, 10)),
)


class DownloadMachine(RuleBasedStateMachine):
    """One download, many runs; see the module's docstring."""

    #: Steps that an engine once failed; each also has a machine of its own below that makes
    #: it often, so that the defect it found stays named.
    WEAK_SAME_SIZE = True  # a change at the same size under a weak ETag
    DELETE_PART = True  # NAME.part deleted while the download is stopped
    SINGLE_UNVALIDATED = True  # a server without ranges or validators, whose file changes

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="freight-model-"))
        self.db = self.tmp / "freight.db"
        self.folder = self.tmp / "dl"
        self.folder.mkdir()
        self.store = Store(self.db)
        self.keeper = StateKeeper(self.store)
        self.id = self.store.add(URL, str(self.folder), state=DownloadState.ACTIVE).id
        self.caps = HostCaps(HOST_CAP)
        self.server: ModelServer | None = None
        self.pending: list[Callable[[int], Rule]] = []  # rules for the next run, by base
        self.kill_at: int | None = None
        self.stop_at: int | None = None
        self.completed = False
        self.problems: list[str] = []
        self.sizes: set[int] = set()
        self.one_stream = False  # the next run may go one stream (see run)

    # -- setup ---------------------------------------------------------------------------

    @initialize(
        size=st.one_of(st.just(0), st.integers(1, 300), st.integers(1500, 8000)),
        kind=st.sampled_from(["strong", "weak", "modified", "none"]),
        ranges=st.booleans(),
    )
    def serve(self, size: int, kind: str, ranges: bool = True) -> None:
        if kind not in ("strong", "modified") and not self.SINGLE_UNVALIDATED:
            # (Without SINGLE_UNVALIDATED: a server whose one stream cannot be checked.)
            ranges = True
        self.server = ModelServer(make_version(1, size, kind))
        self.server.ranges = ranges
        self.sizes.add(size)
        self.server.check = self.check_recorded

    # -- what the server does at the N-th request of the next run ------------------------

    def _at(self, k: int, **rule: Any) -> None:
        def make(base: int) -> Rule:
            assert self.server is not None
            requests = self.server.requests
            return Rule(match=lambda r: len(requests) == base + k + 1, **rule)

        self.pending.append(make)

    def drop(self, k: int, after: int) -> None:
        self._at(k, drop_after=after)

    def change(self, k: int, kind: str, same_size: bool, size: int) -> None:
        assert self.server is not None
        old = self.server.versions[-1]
        if self.one_stream and not self.SINGLE_UNVALIDATED and (
            kind != old.kind or kind not in ("strong", "modified")
        ):
            # One stream re-opens from byte 0 comparing only validators of the same kind,
            # never sizes, unless SINGLE_UNVALIDATED (SingleStreamMachine makes this often).
            return
        comparable = {"strong", "modified"} | ({"weak"} if self.WEAK_SAME_SIZE else set())
        if kind != old.kind or kind not in comparable:
            # Only a validator of the same kind on both versions tells two versions of one
            # size apart (curl -C and wget -c could not either): any other change gets a
            # size never served before.
            same_size = False
        if same_size:
            size = len(old.data)
        elif size in self.sizes or (kind == "none" and size == len(old.data)):
            size = max(self.sizes) + 1 + size % 97
        self.sizes.add(size)
        new = make_version(len(self.server.versions) + 1, size, kind)
        self.server.add_version(new)
        self._at(k, change=(new.data, new.etag))

    def whole_file_to_a_range(self, k: int) -> None:
        self._at(k, whole=True)

    def wrong_range(self, k: int, shift: int) -> None:
        self._at(k, shift=shift)

    def forbidden(self, k: int, status: int) -> None:
        self._at(k, status=status)

    def busy(self, k: int, status: int, times: int) -> None:
        def make(base: int) -> Rule:
            assert self.server is not None
            requests = self.server.requests
            return Rule(match=lambda r: len(requests) > base + k, times=times, status=status,
                        headers={"Retry-After": "0"})

        self.pending.append(make)

    def shutdown(self, k: int) -> None:
        self.stop_at = k

    def kill(self, k: int) -> None:
        self.kill_at = k

    # No preconditions on the run's outcome: threads make it vary from one replay to the
    # next, and hypothesis needs the same steps to be drawable each time.
    @precondition(lambda self: self.DELETE_PART)  # a class constant: never flaky
    @rule()
    def delete_part(self) -> None:
        if self.completed:
            return
        part = self.store.get(self.id).part_path
        if part is not None:
            files.remove_quietly(part)

    # -- a run ---------------------------------------------------------------------------

    @rule(faults=st.lists(FAULTS, max_size=4))
    def run(self, faults: list[tuple[Any, ...]]) -> None:
        if self.completed:
            return
        # This run may go one stream: the server has no ranges, or a range gets a 200 or a
        # wrong range (a restart as one stream, transfer._run).
        assert self.server is not None
        self.one_stream = not self.server.ranges or any(
            name in ("whole_file_to_a_range", "wrong_range") for name, *_ in faults
        )
        for name, *args in faults:
            getattr(self, name)(*args)
        self._run()

    def _run(self) -> None:
        server = self.server
        assert server is not None
        download = self.store.get(self.id)
        if download.state is not DownloadState.ACTIVE:
            # A resume (or a fresh link for the same file, after needs_refresh).
            self.keeper.move(self.id, DownloadState.ACTIVE)
        base = len(server.requests)
        rules = [make(base) for make in self.pending]
        self.pending.clear()
        transfer = Transfer(self.store, self.id, SETTINGS, keeper=self.keeper,
                            host_caps=self.caps, source=server)
        snapshot: list[Path | None] = []
        stops: list[Rule] = []
        if self.kill_at is not None:
            stops.append(self._stop_rule(base, self.kill_at, transfer, snapshot))
        if self.stop_at is not None:
            stops.append(self._stop_rule(base, self.stop_at, transfer, None))
        self.kill_at = self.stop_at = None
        server.rules = stops + rules
        server.aborted = False
        server.stop_index = None
        server.peak = 0

        ended: list[Any] = []
        thread = threading.Thread(target=lambda: ended.append(transfer.run()), daemon=True)
        thread.start()
        thread.join(RUN_BOUND)
        assert not thread.is_alive(), f"the transfer did not end within {RUN_BOUND}s"
        assert ended, "run() raised"
        returned = time.monotonic()
        assert not self.problems, self.problems
        self._check_run(transfer, ended[0].state, returned)
        if snapshot and snapshot[0] is not None:
            self._restore(snapshot[0])
        self._check_end_state()

    def _stop_rule(
        self, base: int, k: int, transfer: Transfer, snapshot: list[Path | None] | None
    ) -> Rule:
        assert self.server is not None
        server = self.server

        def stop() -> None:
            if server.stop_index is not None:
                return
            if snapshot is not None:
                snapshot.append(self._snapshot())  # what kill -9 would leave, at this instant
            server.stop_index = len(server.requests)
            server.stopped_at = time.monotonic()
            transfer.stop("shutdown")

        requests = server.requests
        return Rule(match=lambda r: len(requests) == base + k + 1, before=stop)

    # -- kill -9: the state on disk at one instant, restored --------------------------------

    def _snapshot(self) -> Path:
        """The database (a consistent copy through SQLite's backup) and then the part: the
        part only grows within an attempt, so it holds at least what the copy records."""
        snap = Path(tempfile.mkdtemp(dir=self.tmp, prefix="kill-"))
        src = sqlite3.connect(self.db)
        dst = sqlite3.connect(snap / "freight.db")
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        part = self.store.get(self.id).part_path
        if part is not None and os.path.exists(part):
            shutil.copyfile(part, snap / "part")
        return snap

    def _restore(self, snap: Path) -> None:
        self.store.close()
        for suffix in ("", "-wal", "-shm"):
            files.remove_quietly(str(self.db) + suffix)
        shutil.copyfile(snap / "freight.db", self.db)
        self.store = Store(self.db)
        self.keeper = StateKeeper(self.store)
        part = self.store.get(self.id).part_path
        if part is not None:
            files.remove_quietly(part)
            if (snap / "part").exists():
                shutil.copyfile(snap / "part", part)
        shutil.rmtree(snap)

    # -- invariants ----------------------------------------------------------------------

    def check_recorded(self) -> None:
        """At a request: what a resume would trust is on disk and one version's bytes."""
        try:
            self._check_recorded(self.store)
        except AssertionError as exc:
            self.problems.append(str(exc))

    def _check_recorded(self, store: Store) -> None:
        assert self.server is not None
        download = store.get(self.id)
        if download.state is DownloadState.COMPLETED or download.part_path is None:
            return
        if not os.path.exists(download.part_path):
            return  # a resume without the part starts from zero (transfer._attempt)
        ranges = recorded_ranges(store, self.id)
        with open(download.part_path, "rb") as f:
            on_disk = f.read()
        assert download.done <= max(len(on_disk), 0) or download.done == 0, (
            f"done {download.done} > {len(on_disk)} bytes on disk"
        )
        if not ranges:
            return
        assert download.size is not None, f"ranges {ranges} recorded for a file of no size"
        candidates = [v for v in self.server.versions if len(v.data) == download.size]
        matching = [
            v for v in candidates
            if all(on_disk[a:b] == v.data[a:b] for a, b in ranges)
        ]
        assert matching, (
            f"recorded ranges {ranges} of {download.size} bytes are not one version's bytes "
            f"on disk ({len(on_disk)} bytes)"
        )

    def _check_run(self, transfer: Transfer, state: DownloadState, returned: float) -> None:
        assert self.server is not None
        server = self.server
        leftover = [t.name for t in threading.enumerate() if t.name.startswith(f"dl{self.id}-w")]
        assert not leftover, f"worker threads alive after run(): {leftover}"
        assert server.peak <= HOST_CAP, f"{server.peak} requests in flight, cap {HOST_CAP}"
        if server.stop_index is not None:
            late = len(server.requests) - server.stop_index
            assert late <= CONNECTIONS, f"{late} requests after the stop"
            took = returned - server.stopped_at
            assert took < STOP_BOUND, f"run() returned {took:.2f}s after the stop"
        assert state in ENDED, state

    def _check_end_state(self) -> None:
        assert self.server is not None
        download = self.store.get(self.id)
        if download.state is DownloadState.COMPLETED:
            self.completed = True
            assert download.path is not None
            got = Path(download.path).read_bytes()
            same = [v for v in self.server.versions if v.data == got]
            assert same, f"the saved file ({len(got)} bytes) is no version the server had"
            assert download.size == len(got), (download.size, len(got))
            assert not os.path.exists(str(download.part_path))
        else:
            self._check_recorded(self.store)

    def teardown(self) -> None:
        try:
            if self.server is not None and not self.completed:
                # The user resumes until it is done: every failure before was transient.
                self.pending.clear()
                self.kill_at = self.stop_at = None
                for _ in range(6):
                    self._run()
                    if self.completed:
                        break
                final = self.store.get(self.id)
                assert self.completed, (final.state, final.error)
        finally:
            self.store.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


SETTINGS_FOR_CI = settings(
    # ~1200 examples: about 2,000 runs (Transfers) in ~20 s here; FREIGHT_MODEL_EXAMPLES for more.
    max_examples=int(os.environ.get("FREIGHT_MODEL_EXAMPLES", "1200")),
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


#: For the machines that show a defect of today: no shrinking (the failing case is already
#: the defect's shape), so that each costs a second, not the main test's time.
SETTINGS_FOR_DEFECTS = settings(
    SETTINGS_FOR_CI, max_examples=100, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


def test_a_download_survives_any_server_and_any_crash() -> None:
    run_state_machine_as_test(DownloadMachine, settings=SETTINGS_FOR_CI)


class WeakSameSizeMachine(DownloadMachine):
    """Weak ETags only, and a step that is the defect's shape: a change at the same size."""

    WEAK_SAME_SIZE = True

    @initialize(size=st.integers(1500, 8000))
    def serve(self, size: int) -> None:  # type: ignore[override]
        super().serve(size, "weak")

    @rule(k=st.integers(1, 6))
    def change_in_flight(self, k: int) -> None:
        if not self.completed:
            self.one_stream = False  # this server has ranges, and no other fault is scripted
            self.change(k, "weak", True, 1)
            self._run()


class DeletedPartMachine(DownloadMachine):
    """The defect's shape as one step: stopped with progress, part deleted, killed soon after
    the restart, resumed."""

    DELETE_PART = True

    @rule(k=st.integers(1, 6), j=st.integers(1, 6))
    def stop_delete_kill(self, k: int, j: int) -> None:
        if self.completed:
            return
        self.shutdown(k)
        self._run()
        if self.completed:  # it finished before the stop came: nothing left to restart
            return
        self.delete_part()
        self.kill(j)
        self._run()


def test_a_weak_etag_change_at_the_same_size_is_never_spliced() -> None:
    run_state_machine_as_test(WeakSameSizeMachine, settings=SETTINGS_FOR_DEFECTS)


class SingleStreamMachine(DownloadMachine):
    """A server without ranges nor validators (one stream), whose file changes size between a
    dropped connection and the new request from byte 0."""

    SINGLE_UNVALIDATED = True

    @initialize(size=st.integers(1500, 8000))
    def serve(self, size: int) -> None:  # type: ignore[override]
        super().serve(size, "none", False)

    @rule(after=st.integers(0, 1400), size=st.integers(1, 8000))
    def drop_then_change(self, after: int, size: int) -> None:
        if not self.completed:
            self.drop(0, after)
            self.change(1, "none", False, size)
            self._run()


def test_one_stream_never_saves_a_resized_file_at_the_old_size() -> None:
    run_state_machine_as_test(SingleStreamMachine, settings=SETTINGS_FOR_DEFECTS)


def test_a_deleted_part_never_leaves_progress_over_zeros() -> None:
    run_state_machine_as_test(DeletedPartMachine, settings=SETTINGS_FOR_DEFECTS)


def _one_download(caps: HostCaps, server: ModelServer) -> DownloadState:
    with tempfile.TemporaryDirectory(prefix="freight-model-") as tmp:
        store = Store(Path(tmp) / "freight.db")
        try:
            (Path(tmp) / "dl").mkdir()
            download = store.add(URL, str(Path(tmp) / "dl"), state=DownloadState.ACTIVE)
            transfer = Transfer(store, download.id, SETTINGS, host_caps=caps, source=server)
            return transfer.run().state
        finally:
            store.close()


@given(status=st.sampled_from([429, 503]), times=st.integers(1, 3))
@settings(max_examples=10, deadline=None)
def test_a_lowered_host_cap_recovers(status: int, times: int) -> None:
    # The cap comes back after a calm period (limits.RECOVER_AFTER, 10 s); the clock is moved
    # past it between the two downloads instead of waiting.
    now = [0.0]
    caps = HostCaps(HOST_CAP, clock=lambda: now[0])
    busy = ModelServer(make_version(1, 8000, "strong"))
    busy.rules = [Rule(match=lambda r: r.start > 0, status=status, times=times,
                       headers={"Retry-After": "0"})]
    assert _one_download(caps, busy) is DownloadState.COMPLETED
    now[0] += 3600.0
    # The next download from that host, the server now idle: it splits again.
    idle = ModelServer(make_version(2, 8000, "strong"))
    assert _one_download(caps, idle) is DownloadState.COMPLETED
    assert idle.peak > 1, f"{idle.peak} connection(s) after the burst (cap {caps.cap(HOST)})"
