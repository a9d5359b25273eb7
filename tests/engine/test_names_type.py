"""A URL that names no file gets its name's extension from Content-Type, from a fixed table
first so that the name does not depend on the machine's /etc/mime.types."""

from __future__ import annotations

import pytest
from freight.engine.names import choose_name


@pytest.mark.parametrize(("content_type", "url", "name"), [
    ("text/html; charset=utf-8", "http://h/", "download.html"),
    ("application/json", "http://h/api/index", "index.json"),
    ("application/pdf", "http://h/paper", "paper.pdf"),
    ("image/jpeg", "http://h/", "download.jpg"),
    ("text/plain", "http://h/?q=1", "download.txt"),
    ("application/zip", "http://h/get/", "get.zip"),
    # Kept as they are: a name with an extension, a type that says nothing, none at all.
    ("text/html", "http://h/file.bin", "file.bin"),
    ("application/octet-stream", "http://h/", "download"),
    (None, "http://h/", "download"),
    ("not a type", "http://h/x", "x"),
])
def test_a_name_from_the_content_type(content_type: str | None, url: str, name: str) -> None:
    assert choose_name(None, None, url, content_type) == name


def test_the_users_and_the_servers_names_are_kept_as_given() -> None:
    assert choose_name("mine", None, "http://h/", "text/html") == "mine"
    cd = 'attachment; filename="report"'
    assert choose_name(None, cd, "http://h/", "application/pdf") == "report"
