"""The one rule of duplicate downloads, for every way a download is added (extension, CLI, API).

A new request is a duplicate of an existing download of the same file that is still there
(completed, its file present at its size) or still to come (queued, active or paused):
adding it again would only give ``name (1).ext``. Failed, cancelled and needs_refresh ones
are not: asking again is how a user retries them (or gives the fresh link, refresh.py).

"The same file" is decided at add time, before any probe, from what the request carries:

- the same URL (its fragment never reaches the server, RFC 9110 §4.2.4: ignored); or
- the same address before the query (scheme, host, path) and the same query once the
  params that sign a link are left out (:data:`SIGNATURE_PARAMS`): a signed link fetched
  again differs only in its signature and expiry; or
- the same address before the query and the browser's size (``size_hint``) equal to the
  existing download's size: a link signed in a way the list does not know, for a file of
  that exact size.

The folder and the requested name do not matter: the file exists (or will) wherever it was
asked for, and that is what the user is told; ``again`` adds it anyway.

Sans I/O: the caller reads the candidates (Store.duplicate_candidates, by the address
before the query, indexed) and whether each completed file is still on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from freight.models import DownloadState

S = DownloadState

#: Query params that sign or time-limit a link rather than name the file, lower-cased:
#: AWS SigV4 and SigV2 query auth, Google Cloud Storage, CloudFront signed URLs, Azure SAS
#: and the usual names of token-and-expiry CDNs. A param not listed here names the file
#: (``?id=3``), so two links that differ in it are two files.
SIGNATURE_PARAMS = frozenset({
    "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
    "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders",
    "awsaccesskeyid", "signature", "expires",
    "x-goog-algorithm", "x-goog-credential", "x-goog-date", "x-goog-expires",
    "x-goog-signature", "x-goog-signedheaders", "googleaccessid",
    "policy", "key-pair-id",
    "sv", "ss", "srt", "sp", "se", "st", "spr", "sig", "sr", "skoid", "sktid", "skt", "ske",
    "sks", "skv",
    "expiry", "exp", "hmac", "validfrom", "validto",
})

#: Whose file is still there or still to come.
PENDING = frozenset({S.QUEUED, S.ACTIVE, S.PAUSED})


@dataclass(frozen=True)
class Request:
    url: str
    size_hint: int | None = None


@dataclass(frozen=True)
class Candidate:
    """An existing download with the same address before the query."""

    id: int
    url: str
    state: DownloadState
    name: str | None
    path: str | None
    size: int | None
    #: The completed file is on disk at its size (read by the caller; False when not completed).
    file_present: bool = False


def address(url: str) -> str:
    """The URL before its query: what the store indexes candidates by (its SQL cuts at the
    first "?" the same way). A fragment without a query stays in it: such links match only
    with the same fragment."""
    return url.split("?", 1)[0]


def _unsigned_query(url: str) -> list[tuple[str, str]]:
    query = urlsplit(url).query
    return sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                  if k.lower() not in SIGNATURE_PARAMS)


def same_file(request: Request, candidate: Candidate) -> bool:
    new, old = request.url.split("#", 1)[0], candidate.url.split("#", 1)[0]
    if new == old:
        return True
    if address(new).split("#", 1)[0] != address(old).split("#", 1)[0]:
        return False
    if _unsigned_query(new) == _unsigned_query(old):
        return True
    return request.size_hint is not None and request.size_hint == candidate.size


def duplicate_of(request: Request, candidates: list[Candidate]) -> Candidate | None:
    """The existing download ``request`` would repeat, or None to add it. A download still
    to come wins over a finished copy (it is what the user waits for); among equals, the
    newest."""
    alive = [c for c in candidates
             if c.state in PENDING or (c.state == S.COMPLETED and c.file_present)]
    matches = [c for c in alive if same_file(request, c)]
    if not matches:
        return None
    return max(matches, key=lambda c: (c.state in PENDING, c.id))


def answer(candidate: Candidate) -> dict[str, object]:
    """The ``duplicate`` object of ``add``'s result (docs/PROTOCOL.md)."""
    return {"id": candidate.id, "state": candidate.state.value, "name": candidate.name,
            "path": candidate.path}
