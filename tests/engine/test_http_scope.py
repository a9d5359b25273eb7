"""The headers each origin gets, sans I/O: secrets scoped to their origin (RFC 6454), URL
userinfo as Basic auth (RFC 7617), URLs on the wire (RFC 3986) and redirect targets."""

from __future__ import annotations

import base64

import pytest
from freight.engine.http.follow import Scopes, next_url
from freight.engine.http.request import RangeRequest, origin_of, percent_encoded, split_userinfo
from freight.engine.http.validate import Validators
from freight.errors import ProtocolViolation
from hypothesis import given
from hypothesis import strategies as st

URL = "http://files.test/f.bin"


# -- secrets scoped to their origin --------------------------------------------------------

SECRETS = {"Cookie": "s=1", "Authorization": "Bearer t", "Proxy-Authorization": "Basic p",
           "X-Api-Key": "k", "User-Agent": "UA/1", "Referer": "https://site.test/page?q=1"}


def test_headers_go_to_their_origin_only() -> None:
    request = RangeRequest(URL, 10, 20, Validators('"v"'), 100, SECRETS).scoped()
    same = request.wire_headers("http://files.test:80/other")
    assert {k: same[k] for k in SECRETS} == SECRETS
    other = request.wire_headers("https://cdn.test/f.bin")
    assert set(other) == {"User-Agent", "Referer", "Accept-Encoding", "Range", "If-Range"}
    assert other["Referer"] == "https://site.test/"  # strict-origin-when-cross-origin
    assert "Referer" not in request.wire_headers("http://cdn.test/f.bin")  # no downgrade
    assert "Cookie" not in request.wire_headers("https://files.test/f.bin")  # other scheme


@given(st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12),
       st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12))
def test_userinfo_becomes_basic_auth_for_its_origin(user: str, password: str) -> None:
    from urllib.parse import quote

    url = f"http://{quote(user, safe='')}:{quote(password, safe='')}@files.test/f.bin"
    bare, auth = split_userinfo(url)
    assert bare == URL
    assert auth is not None
    assert base64.b64decode(auth.split()[1]).decode() == f"{user}:{password}"
    request = RangeRequest(url).scoped()
    assert request.url == URL and auth not in repr(request)  # never shown
    assert request.wire_headers()["Authorization"] == auth
    assert "Authorization" not in request.wire_headers("http://cdn.test/f.bin")


def test_a_user_authorization_wins_over_userinfo() -> None:
    request = RangeRequest("http://u:p@files.test/f", headers={"authorization": "Bearer x"})
    sent = request.scoped().wire_headers()
    assert sent == {"authorization": "Bearer x", "Accept-Encoding": "identity",
                    "Range": "bytes=0-"}


def test_the_final_url_keeps_the_first_origins_scope() -> None:
    scopes = Scopes()
    first = RangeRequest("http://u:p@files.test/f", headers={"Cookie": "c=1"}).scoped()
    scopes.remember("https://cdn.test/f", first)
    later = scopes.resolve(RangeRequest("https://cdn.test/f", 5, 9, headers={"Cookie": "c=1"}))
    assert "Cookie" not in later.wire_headers() and "Authorization" not in later.wire_headers()
    back = later.wire_headers("http://files.test/x")
    assert back["Cookie"] == "c=1" and back["Authorization"].startswith("Basic ")


def test_urls_on_the_wire() -> None:
    assert percent_encoded("http://h/ünï code.bin?q=ä") == (
        "http://h/%C3%BCn%C3%AF%20code.bin?q=%C3%A4"
    )
    assert percent_encoded("http://h/a%20b") == "http://h/a%20b"  # never encoded twice
    assert origin_of("HTTP://Files.Test/x") == origin_of("http://files.test:80/y")
    assert next_url("http://a.test/x/y", "../z") == "http://a.test/z"
    assert next_url("http://a.test/x", "//u:p@b.test/é") == "http://b.test/%C3%A9"
    with pytest.raises(ProtocolViolation, match="unsupported scheme"):
        next_url("http://a.test/x", "file:///etc/passwd")


ORIGINS = ["http://a.test", "https://a.test", "http://a.test:8080", "https://cdn.test",
           "http://b.test"]


@given(st.lists(st.sampled_from(ORIGINS), min_size=0, max_size=5),
       st.sampled_from(ORIGINS), st.booleans())
def test_no_secret_ever_reaches_another_origin(chain, first, userinfo) -> None:
    # A redirect chain through any origins, then range requests to the final URL: a request
    # carries the download's secrets exactly when it goes to the origin they were given for.
    from freight.engine.http.scripted import Rule, ScriptedSource

    hops = [f"{origin}/hop{i}" for i, origin in enumerate(chain)] + [f"{first}/file"]
    rules = [Rule(match=lambda r, u=u: r.url == u, redirect=v, times=None)
             for u, v in zip(hops, hops[1:], strict=False)]
    source = ScriptedSource(bytes(range(256)) * 40, rules=rules)
    start = hops[0].replace("://", "://u:pw@", 1) if userinfo else hops[0]
    secrets = {"Cookie": "c=1", "Authorization": "Bearer t"} if not userinfo else {"Cookie": "c=1"}
    reply = source.open(RangeRequest(start, headers=secrets))
    assert "pw" not in reply.url
    for offset in (100, 5000):
        source.open(RangeRequest(reply.url, offset, offset + 50, size=10240, headers=secrets))
    home = origin_of(hops[0])
    for request in source.requests:
        carried = {k.lower() for k in request.headers} & {"cookie", "authorization"}
        if request.origin == home:
            assert carried == {"cookie", "authorization"}, request
        else:
            assert not carried, request
