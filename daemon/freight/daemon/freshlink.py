"""Whether a fresh link for a waiting download is taken, and how: sans-I/O.

A download whose signed link expired waits (``needs_refresh``) with part of its file on disk.
A new link for it comes from a click in the browser (the extension's ``refresh``) or from
`freight refresh`. Its bytes are written into the same ``.part``, so the link must be shown to
be the same file from the same place before a byte of it is spliced in:

- **Same site.** The new URL's site — scheme and registrable domain (RFC 6265bis §5.2 "site",
  HTML's "same site": the Public Suffix List decides what a registrable domain is, so
  ``a.github.io`` and ``b.github.io`` are two sites, ``dl.example.com`` and ``example.com``
  one) — is the site of the download's URL or of its final URL after redirects; or else the
  page it came from (the referrer) is on the site of the page the download came from, both
  known (a site that moved its files to another CDN). An IP address is a site of its own, so
  ``127.0.0.1`` and ``localhost`` are two. A page elsewhere never supplies the link.
- **Same file.** The new link's answer (a probe, made by the caller) must declare the size
  the download knows, and — when the download has a strong validator, the very one the
  engine sends in If-Range (a strong ETag; with no ETag at all, Last-Modified) — the same
  one, by strong comparison (RFC 9110 §8.8.3.2: neither weak, identical opaque-tags; dates
  identical). Then the download resumes where it stopped.
- **Nothing to prove it with.** A download without a strong validator (a weak ETag, none at
  all) or without a known size cannot show that the bytes on disk belong to the new link's
  file: the link is taken (same site, same size), but the download starts again from zero
  and nothing is spliced.
- **Forced.** `freight refresh --force` takes any link, always from zero.

The caller (freight.daemon.refresh) does the I/O: it checks the site first (no request goes
to another site), probes, and carries out the :class:`Verdict`.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from freight.engine.http.validate import Validators


@dataclass(frozen=True, order=True)
class Site:
    """A scheme and a registrable domain (or an IP address, or a host that is itself a public
    suffix, such as ``localhost``)."""

    scheme: str
    domain: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.domain}"


@functools.cache
def _suffixes() -> PublicSuffixList:
    # The list bundled with the package: offline, the same answer on every machine. Parsed
    # once (some tens of milliseconds), on the first refresh.
    return PublicSuffixList()


def _ascii_host(host: str) -> str:
    """The host's ASCII (A-label) form, as the list is written; the host itself when the
    IDNA codec refuses it (it then matches only itself)."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def site_of(url: str | None) -> Site | None:
    """The site of an http(s) URL; None for no URL, another scheme or no host."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return None
    host = host.rstrip(".")
    try:
        return Site(scheme, ipaddress.ip_address(host).compressed)
    except ValueError:
        pass
    ascii_host = _ascii_host(host).lower()
    return Site(scheme, _suffixes().privatesuffix(ascii_host) or ascii_host)


def same_site(a: str | None, b: str | None) -> bool:
    """Both URLs have a site, and it is the same one."""
    first, second = site_of(a), site_of(b)
    return first is not None and first == second


@dataclass(frozen=True)
class Waiting:
    """What the waiting download knows of its file."""

    urls: tuple[str, ...]  # its URL and, when known, the final URL after redirects
    referrer: str | None
    size: int | None
    validators: Validators


@dataclass(frozen=True)
class Offer:
    """The fresh link as given: its URL and the page it came from."""

    url: str
    referrer: str | None = None


@dataclass(frozen=True)
class Probed:
    """What the new link's server answered: the file's size and validators."""

    size: int | None
    validators: Validators


class Take(enum.Enum):
    RESUME = "resume"  # the same file: go on from the bytes held
    RESTART = "restart"  # take the link, forget the bytes held, start from zero


@dataclass(frozen=True)
class Verdict:
    """``take`` None: refused, ``why`` is "site", "size" or "validator". ``reason`` is the
    sentence the user reads."""

    take: Take | None
    reason: str
    why: str = ""

    @property
    def refused(self) -> bool:
        return self.take is None


def site_refusal(waiting: Waiting, offer: Offer) -> Verdict | None:
    """The refusal of a link from another site, or None when the site is the download's."""
    if any(same_site(offer.url, known) for known in waiting.urls):
        return None
    if offer.referrer and waiting.referrer and same_site(offer.referrer, waiting.referrer):
        return None
    new, old = site_of(offer.url), site_of(waiting.urls[0]) if waiting.urls else None
    return Verdict(
        None, f"the new link is on another site ({new or 'unknown'}) than the download "
        f"({old or 'unknown'})", "site",
    )


def strong_validator(validators: Validators) -> str | None:
    """The validator the engine proves a resume with (its If-Range), None without one."""
    return validators.if_range()


def strong_match(held: Validators, seen: Validators) -> bool:
    """Whether ``seen`` carries the download's strong validator (RFC 9110 §8.8.3.2)."""
    if held.etag:
        if held.weak or not seen.etag or seen.weak:
            return False
        return held.etag.strip() == seen.etag.strip()
    return bool(held.last_modified) and held.last_modified == seen.last_modified


def file_verdict(waiting: Waiting, probed: Probed | None) -> Verdict:
    """Resume, restart or refuse, by what the new link answered (None: it was not asked,
    because the download knows no size: nothing can be compared, nothing is kept)."""
    if waiting.size is None or probed is None:
        return Verdict(Take.RESTART, "the download knows no size to compare: it starts over")
    if probed.size is None:
        return Verdict(None, f"the new link does not tell its size; the download has "
                       f"{waiting.size:,} bytes", "size")
    if probed.size != waiting.size:
        return Verdict(None, f"the new link serves {probed.size:,} bytes, the download has "
                       f"{waiting.size:,}", "size")
    held = waiting.validators
    if strong_validator(held) is None:
        return Verdict(Take.RESTART, "nothing shows that the bytes held are this file "
                       "(no strong validator): it starts over from zero")
    if not strong_match(held, probed.validators):
        if held.etag:
            what = f"ETag {_shown(probed.validators.etag)}, the download has {_shown(held.etag)}"
        else:
            what = (f"Last-Modified {_shown(probed.validators.last_modified)}, the download "
                    f"has {_shown(held.last_modified)}")
        return Verdict(None, f"the new link serves a different file ({what})", "validator")
    return Verdict(Take.RESUME, "the same file: it resumes")


def decide(waiting: Waiting, offer: Offer, probed: Probed | None, *, force: bool) -> Verdict:
    """The whole decision: the site first, then the file; ``force`` takes any link, from
    zero (never splicing: nothing was shown about it)."""
    if force:
        return Verdict(Take.RESTART, "taken as told (--force): it starts over from zero")
    refusal = site_refusal(waiting, offer)
    if refusal is not None:
        return refusal
    return file_verdict(waiting, probed)


def _shown(value: str | None) -> str:
    """A server's validator as the user may read it: printable ASCII, at most 60 characters."""
    if not value:
        return "none"
    text = "".join(c if " " <= c <= "~" else "?" for c in value)
    return text if len(text) <= 60 else text[:57] + "..."
