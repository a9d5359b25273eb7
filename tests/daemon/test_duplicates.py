"""The rule of duplicate downloads (freight.daemon.duplicates, sans-I/O): what counts as the
same file at add time, and which existing downloads a new one may repeat."""

from __future__ import annotations

import pytest
from freight.daemon.duplicates import Candidate, Request, answer, duplicate_of, same_file
from freight.models import DownloadState as S

BASE = "https://cdn.example.com/files/big.iso"


def cand(url: str, state: S = S.COMPLETED, *, id: int = 1, size: int | None = 100,
         present: bool = True) -> Candidate:
    return Candidate(id=id, url=url, state=state, name="big.iso", path="/dl/big.iso",
                     size=size, file_present=present and state == S.COMPLETED)


@pytest.mark.parametrize(("new", "old", "same"), [
    (BASE, BASE, True),
    (BASE + "#part2", BASE, True),  # a fragment never reaches the server
    (BASE + "?X-Amz-Signature=aa&X-Amz-Date=1&X-Amz-Expires=60",
     BASE + "?X-Amz-Signature=bb&X-Amz-Date=2&X-Amz-Expires=60", True),
    (BASE + "?sv=2021&sig=abc&se=2026-01-01&sp=r", BASE + "?sv=2021&sig=def&se=2026-02-01&sp=r",
     True),  # Azure SAS
    (BASE + "?Policy=p&Signature=s1&Key-Pair-Id=k", BASE + "?Signature=s2&Policy=q&Key-Pair-Id=k",
     True),  # CloudFront, params in another order
    (BASE + "?id=1", BASE + "?id=2", False),  # a param that names the file
    (BASE + "?id=1&sig=a", BASE + "?id=2&sig=b", False),
    ("https://cdn.example.com/files/other.iso", BASE, False),
    ("https://other.example.org/files/big.iso", BASE, False),
    (BASE + "?token=a", BASE + "?token=b", False),  # a token may name the file: not dropped
])
def test_same_file_by_url(new: str, old: str, same: bool) -> None:
    assert same_file(Request(new), cand(old)) is same


def test_an_unknown_signature_matches_by_the_browsers_size() -> None:
    old = cand(BASE + "?t=one", size=100)
    assert same_file(Request(BASE + "?t=two", size_hint=100), old)
    assert not same_file(Request(BASE + "?t=two", size_hint=101), old)
    assert not same_file(Request(BASE + "?t=two"), old)
    assert not same_file(Request(BASE + "?t=two", size_hint=100), cand(BASE + "?t=one", size=None))


def test_only_a_file_still_there_or_still_to_come_is_repeated() -> None:
    for state in (S.QUEUED, S.ACTIVE, S.PAUSED):
        assert duplicate_of(Request(BASE), [cand(BASE, state)]) is not None, state
    assert duplicate_of(Request(BASE), [cand(BASE, S.COMPLETED)]) is not None
    assert duplicate_of(Request(BASE), [cand(BASE, S.COMPLETED, present=False)]) is None
    for state in (S.FAILED, S.REMOVED, S.NEEDS_REFRESH):
        assert duplicate_of(Request(BASE), [cand(BASE, state)]) is None, state
    assert duplicate_of(Request(BASE), []) is None


def test_a_download_still_to_come_wins_over_a_finished_copy_then_the_newest() -> None:
    found = duplicate_of(Request(BASE), [cand(BASE, S.QUEUED, id=3), cand(BASE, id=9),
                                         cand(BASE, S.PAUSED, id=5)])
    assert found is not None and found.id == 5
    found = duplicate_of(Request(BASE), [cand(BASE, id=2), cand(BASE, id=7)])
    assert found is not None and found.id == 7
    assert answer(found) == {"id": 7, "state": "completed", "name": "big.iso",
                             "path": "/dl/big.iso"}
