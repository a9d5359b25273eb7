"""Explored: the decision on a fresh link (freight.daemon.freshlink, sans-I/O) — whatever the
hosts, sizes and validators, a link is resumed only from the download's site, for its size,
with its strong validator; refused whenever the site or the size differs; ``force`` always
starts over; and "same site" is an equivalence (the Public Suffix List, offline)."""

from __future__ import annotations

import pytest
from freight.daemon.freshlink import (
    Offer,
    Probed,
    Take,
    Waiting,
    decide,
    same_site,
    site_of,
    strong_match,
)
from freight.engine.http.validate import Validators
from hypothesis import given, settings
from hypothesis import strategies as st

HOSTS = st.sampled_from([
    "example.com", "dl.example.com", "cdn.example.com", "example.org", "a.github.io",
    "b.github.io", "files.example.co.uk", "www.example.co.uk", "other.co.uk", "localhost",
    "127.0.0.1", "[::1]", "10.0.0.7", "xn--bcher-kva.example", "bücher.example", "EXAMPLE.COM.",
])
SCHEMES = st.sampled_from(["http", "https"])
URLS = st.builds(lambda s, h, p: f"{s}://{h}{p}", SCHEMES, HOSTS,
                 st.sampled_from(["/f.bin", "/f.bin?sig=1", ":8080/x/f.bin", "/"]))
ETAGS = st.one_of(st.none(), st.sampled_from(['"v1"', '"v2"', 'W/"v1"', 'W/"v2"']))
DATES = st.one_of(st.none(), st.sampled_from(["Wed, 01 Jan 2025 00:00:00 GMT",
                                              "Thu, 02 Jan 2025 00:00:00 GMT"]))
VALIDATORS = st.builds(Validators, ETAGS, DATES)
SIZES = st.one_of(st.none(), st.integers(0, 10))


@pytest.mark.parametrize(("a", "b", "same"), [
    ("https://dl.example.com/f", "https://www.example.com/g", True),
    ("https://example.com/f", "http://example.com/f", False),  # schemeful (RFC 6265bis)
    ("http://127.0.0.1:1/f", "http://localhost:1/f", False),
    ("https://a.github.io/f", "https://b.github.io/f", False),  # a private public suffix
    ("https://files.example.co.uk/", "https://www.example.co.uk/", True),
    ("https://example.co.uk/", "https://other.co.uk/", False),
    ("https://bücher.example/", "https://xn--bcher-kva.example/", True),
    ("https://EXAMPLE.com./f", "https://example.com/f", True),
    ("ftp://example.com/f", "ftp://example.com/f", False),  # not a web site
])
def test_same_site_examples(a: str, b: str, same: bool) -> None:
    assert same_site(a, b) is same


@settings(max_examples=300)
@given(a=URLS, b=URLS, c=URLS)
def test_same_site_is_an_equivalence(a: str, b: str, c: str) -> None:
    assert same_site(a, a)
    assert same_site(a, b) == same_site(b, a)
    if same_site(a, b) and same_site(b, c):
        assert same_site(a, c)
    assert same_site(a, b) == (site_of(a) == site_of(b))


@settings(max_examples=500)
@given(old=URLS, final=st.one_of(st.none(), URLS), new=URLS, old_ref=st.one_of(st.none(), URLS),
       new_ref=st.one_of(st.none(), URLS), size=SIZES, new_size=SIZES, held=VALIDATORS,
       seen=VALIDATORS, force=st.booleans())
def test_a_link_resumes_only_from_the_site_for_the_same_size_and_strong_validator(
    old, final, new, old_ref, new_ref, size, new_size, held, seen, force
) -> None:
    waiting = Waiting(tuple(u for u in (old, final) if u), old_ref, size, held)
    verdict = decide(waiting, Offer(new, new_ref), Probed(new_size, seen), force=force)
    on_site = same_site(new, old) or same_site(new, final) or (
        bool(old_ref and new_ref) and same_site(new_ref, old_ref))
    if force:
        assert verdict.take is Take.RESTART  # taken, and never spliced
        return
    if not on_site:
        assert verdict.refused and verdict.why == "site"
        return
    if size is not None and new_size != size:
        assert verdict.refused and verdict.why == "size"
        assert f"{size:,}" in verdict.reason
        return
    if verdict.take is Take.RESUME:
        assert size is not None and new_size == size
        assert held.if_range() is not None and strong_match(held, seen)
    elif verdict.refused:
        assert verdict.why == "validator" and held.if_range() is not None
        assert not strong_match(held, seen)
    else:  # restart: nothing to prove the bytes held with
        assert size is None or held.if_range() is None


@given(held=VALIDATORS, seen=VALIDATORS)
def test_strong_comparison_never_takes_a_weak_tag(held: Validators, seen: Validators) -> None:
    if strong_match(held, seen):
        if held.etag:
            assert not held.weak and not seen.weak and held.etag == seen.etag
        else:
            assert held.last_modified and held.last_modified == seen.last_modified


def test_the_reasons_say_why() -> None:
    waiting = Waiting(("https://example.com/f",), None, 5678, Validators('"a"', None))
    elsewhere = decide(waiting, Offer("https://evil.test/f"), None, force=False)
    assert elsewhere.refused and "another site (https://evil.test)" in elsewhere.reason
    size = decide(waiting, Offer("https://dl.example.com/f"), Probed(1234, Validators('"a"')),
                  force=False)
    assert size.reason == "the new link serves 1,234 bytes, the download has 5,678"
    other = decide(waiting, Offer("https://example.com/f"), Probed(5678, Validators('"b\x1b"')),
                   force=False)
    assert other.refused and 'ETag "b?"' in other.reason  # a server's control byte escaped
