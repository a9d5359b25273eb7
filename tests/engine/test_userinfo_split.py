"""URL userinfo taken out where a URL enters Freight: one function in the shared top
(freight.urls.split_credentials), RFC 7617 Basic from the percent-decoded userinfo (UTF-8),
and an explicit Authorization header of the user's wins over it (freight.headers.with_basic)."""

from __future__ import annotations

import base64
from urllib.parse import quote, urlsplit

from freight.headers import with_basic
from freight.urls import split_credentials
from hypothesis import given
from hypothesis import strategies as st

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
PATHS = st.sampled_from(["/f.bin", "/a/b%20c.iso?sig=1&x=%40", "/", ""])


@given(TEXT, TEXT, PATHS, st.sampled_from(["files.test", "127.0.0.1:8080", "[::1]:81"]))
def test_userinfo_leaves_the_url_and_becomes_basic(user, password, path, host) -> None:
    clean = f"https://{host}{path}"
    url = f"https://{quote(user, safe='')}:{quote(password, safe='')}@{host}{path}"
    bare, authorization = split_credentials(url)
    assert bare == clean
    assert "@" not in urlsplit(bare).netloc
    assert authorization is not None and authorization.startswith("Basic ")
    assert base64.b64decode(authorization[6:]).decode() == f"{user}:{password}"
    if len(password) >= 4 and password not in clean:  # "file" is in "files.test" itself
        assert password not in bare and quote(password, safe="") not in bare


@given(PATHS)
def test_a_url_without_userinfo_is_left_as_it_is(path) -> None:
    url = f"http://files.test{path}"
    assert split_credentials(url) == (url, None)
    assert split_credentials(f"http://@files.test{path}") == (url, None)  # an empty userinfo


def test_a_user_without_a_password_is_basic_with_an_empty_one() -> None:
    _, authorization = split_credentials("http://alice@files.test/f")
    assert authorization == "Basic " + base64.b64encode(b"alice:").decode()


@given(st.dictionaries(st.sampled_from(["Cookie", "X-Key", "authorization", "AUTHORIZATION"]),
                       st.text(max_size=5), max_size=3))
def test_an_explicit_authorization_wins_over_the_userinfo(secret) -> None:
    basic = "Basic YTpi"
    merged = with_basic(secret, basic)
    explicit = [k for k in secret if k.lower() == "authorization"]
    if explicit:
        assert merged == secret  # the userinfo is dropped
    else:
        assert merged == {**secret, "Authorization": basic}
    assert with_basic(secret, None) == secret
