"""freight.urls: the one URL check, shared by the API's params and ``freight get``."""

from __future__ import annotations

import pytest
from freight import urls
from freight.daemon import protocol as api
from freight.errors import InputError


@pytest.mark.parametrize(
    "url",
    ["http://example.com/a", "HTTPS://example.com:8443/a?b=c#d", "http://user:pw@127.0.0.1/",
     "http://[::1]:8080/x"],
)
def test_fetchable_urls_pass_unchanged(url: str) -> None:
    assert urls.check_http_url(url) == url
    assert urls.problem(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/a b", "a URL without spaces or control characters"),
        ("http://example.com/\r\nX: y", "a URL without spaces or control characters"),
        ("http://example.com/\x01", "a URL without spaces or control characters"),
        ("http://example.com:99999/", "a valid http or https URL"),
        ("http://example.com:port/", "a valid http or https URL"),
        ("http://[::1/", "a valid http or https URL"),
        ("ftp://example.com/a", "an http or https URL with a host"),
        ("file:///etc/passwd", "an http or https URL with a host"),
        ("http:///no-host", "an http or https URL with a host"),
        ("example.com/a", "an http or https URL with a host"),
    ],
)
def test_every_refusal_says_why(url: str, why: str) -> None:
    assert urls.problem(url) == why
    with pytest.raises(InputError) as info:
        urls.check_http_url(url)
    assert info.value.message == f"not an http(s) URL: it must be {why}"
    assert "example.com" not in info.value.message  # a URL may carry userinfo: never quoted
    # The API's checker says the same, in its own "param ... must be" words.
    with pytest.raises(InputError) as info:
        api.check_params("add", {"url": url})
    assert info.value.message == f"param 'url' must be {why}"
