"""`freight add` splits many URLs into ``add_many`` requests that fit the API's message."""

from __future__ import annotations

from freight.cli import adding


def test_chunks_keep_every_url_in_order_within_both_bounds() -> None:
    urls = [f"http://h.example/{i}" for i in range(2500)]
    urls += [f"http://h.example/{i}/" + "x" * 16_000 for i in range(20)]  # the longest taken
    urls += [f"http://h.example/tail{i}" for i in range(3)]
    chunks = adding._chunks(urls)
    assert [u for chunk in chunks for u in chunk] == urls
    assert [len(c) for c in chunks[:2]] == [1000, 1000]
    assert len(chunks) == 4 and len(chunks[2]) < 1000  # the third is cut by its characters
    for chunk in chunks:
        assert chunk and len(chunk) <= adding.CHUNK_URLS
        assert len(chunk) == 1 or sum(map(len, chunk)) <= adding.CHUNK_CHARS
    assert adding._chunks(urls[:1]) == [urls[:1]]
