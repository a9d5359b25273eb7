"""A real Transfer against the ScriptedSource, explored with hypothesis (issue 12): whatever
the file size, connection count, split size and dropped connections, the range requests
never ask the server for a byte twice unless the connection carrying it dropped, and the
file on disk is the server's."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from freight.config import EngineSettings
from freight.engine.http.scripted import Request, Rule, ScriptedSource
from freight.engine.transfer import Transfer
from freight.models import DownloadState
from freight.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

URL = "http://files.test/data.bin"


class Counter:
    """The first rule: numbers every request (the probe is 0) and never matches."""

    def __init__(self) -> None:
        self.n = -1

    def __call__(self, request: Request) -> bool:
        self.n += 1
        return False


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 600_000),
    connections=st.integers(1, 12),
    min_split=st.sampled_from([4096, 16_384, 65_536]),
    read_size=st.sampled_from([4096, 16_384]),
    drops=st.dictionaries(st.integers(1, 12), st.integers(0, 50_000), max_size=3),
)
def test_requests_never_ask_for_a_byte_twice(size, connections, min_split, read_size, drops):
    data = bytes((i * 13 + i // 997) % 256 for i in range(size))
    counter = Counter()
    rules = [Rule(match=counter, times=None)] + [
        Rule(match=lambda r, k=k: counter.n == k, drop_after=after)
        for k, after in drops.items()
    ]
    source = ScriptedSource(data, rules=rules)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "freight.db")
        try:
            (Path(tmp) / "dl").mkdir()
            download = store.add(URL, str(Path(tmp) / "dl"), state=DownloadState.ACTIVE)
            engine = EngineSettings(
                connections=connections, adaptive=False, min_split_size=min_split,
                read_size=read_size, retry_base=0.0, retry_max=0.01, max_tries=20,
                checkpoint_interval=0.05,
            )
            transfer = Transfer(store, download.id, engine, source=source)
            thread = threading.Thread(target=transfer.run, daemon=True)
            thread.start()
            thread.join(30)
            assert not thread.is_alive()
            done = store.get(download.id)
            assert done.state is DownloadState.COMPLETED, (done.state, done.error)
            assert Path(str(done.path)).read_bytes() == data
        finally:
            store.close()
    # The windows ask for every byte once (the probe too: it asks a bounded first window,
    # bytes=0-(W-1)); twice only where a dropped connection lost it.
    edges = [0] * (size + 1)
    dropped = 0
    for k, r in enumerate(source.requests):
        assert r.end is not None and 0 <= r.start < r.end, r
        r = replace(r, end=min(r.end, size))
        edges[r.start] += 1
        edges[r.end] -= 1
        if k in drops:
            dropped += r.end - r.start
    depth = overlap = 0
    for i in range(size):
        depth += edges[i]
        overlap += max(0, depth - 1)
    assert overlap <= dropped, f"{overlap} bytes asked for twice, {dropped} dropped"
