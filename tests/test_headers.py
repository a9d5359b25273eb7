"""One header rule for `freight get -H`, `freight add -H` and the API's ``headers`` param."""

from __future__ import annotations

import pytest
from freight.daemon import protocol
from freight.errors import InputError
from freight.headers import SECRET_HEADERS, parse_header_lines, split_headers
from hypothesis import given
from hypothesis import strategies as st


@given(st.text(max_size=20), st.text(max_size=40))
def test_the_cli_and_the_api_accept_the_same_headers(name: str, value: str) -> None:
    try:
        parsed = parse_header_lines([f"{name}: {value}"])
    except InputError:
        parsed = None
    if parsed is None:
        # A line the CLI refuses is either not "Name: value" at all, or a header the API
        # refuses too.
        clean = name.strip()
        if clean and ":" not in clean:
            with pytest.raises(InputError):
                protocol.check_params(
                    "add", {"url": "http://h/f", "headers": {clean: value.strip()}}
                )
        return
    checked = protocol.check_params("add", {"url": "http://h/f", "headers": parsed})
    assert checked["headers"] == parsed


@pytest.mark.parametrize(
    "line", ["NoColon", ": no name", "Bad Name: x", "X-Inject: a\r\nEvil: 1", "X-Nul: a\x00b"]
)
def test_bad_header_lines_are_refused_with_the_line(line: str) -> None:
    with pytest.raises(InputError) as info:
        parse_header_lines([line])
    assert repr(line) in info.value.message


def test_secret_headers_are_split_off_whatever_their_case() -> None:
    plain, secret = split_headers(
        {"COOKIE": "a=1", "Authorization": "Bearer x", "proxy-authorization": "p", "X-A": "b"}
    )
    assert plain == {"X-A": "b"}
    assert {k.lower() for k in secret} == SECRET_HEADERS
