"""Names for downloaded files: the one a download gets (the user's, the server's, the URL's)
made safe on every system, and its numbered variants when it is taken (files.reserve)."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from urllib.parse import unquote, urlsplit

MAX_NAME_BYTES = 200  # below every common filesystem's 255, leaving room for " (12).part"
FALLBACK_NAME = "download"

# Windows refuses these as names whatever the extension (CON.txt is CON).
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')


def sanitize(name: str) -> str:
    """A name safe on Linux, macOS and Windows: no separators, no traversal, no control
    characters, no reserved device names, not hidden, at most MAX_NAME_BYTES of UTF-8."""
    name = unicodedata.normalize("NFC", name)
    # Drop format characters such as U+202E (right-to-left override) that disguise extensions.
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf"))
    # Keep only the last path component: a server must not choose our folder.
    name = re.split(r"[/\\]", name)[-1]
    name = _FORBIDDEN.sub("_", name).strip().strip(".").strip()
    if not name:
        return FALLBACK_NAME
    stem, dot, ext = name.rpartition(".")
    base = (stem if dot else ext).split(".")[0]
    if base.upper() in _RESERVED:
        name = "_" + name
    return _truncate(name)


def _truncate(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    budget = MAX_NAME_BYTES - len(ext.encode()) - (1 if ext else 0)
    cut = stem.encode()[:budget].decode(errors="ignore")
    # The cut may end in a space or dot, which Windows drops from a name.
    return f"{cut}.{ext}" if ext else cut.rstrip(" .")


def name_from_content_disposition(value: str | None) -> str | None:
    """The file name a Content-Disposition header gives, ``filename*`` first (RFC 6266 §4.3).

    ``filename*`` carries an RFC 8187 (ex-5987) encoded value: ``UTF-8''na%C3%AFve.txt``.
    The result is not yet sanitised.
    """
    if not value:
        return None
    found: str | None = None
    # filename* first: email's get_filename() returns the plain filename when both are given.
    match = re.search(r"filename\*\s*=\s*([^';]+)'[^']*'([^;]+)", value, re.I)
    if match:
        try:
            found = unquote(match.group(2).strip().strip('"'), match.group(1), "strict")
        except (LookupError, UnicodeDecodeError):
            found = None
    if found is None:
        from email.message import Message  # rare: only for what the regex above cannot read

        msg = Message()
        msg["content-disposition"] = value
        try:
            found = msg.get_filename()
        except (ValueError, LookupError):
            found = None
    if found is None:
        match = re.search(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"|filename\s*=\s*([^;]+)', value, re.I)
        if match:
            found = (match.group(1) or match.group(2) or "").strip()
    return found or None


def name_from_url(url: str) -> str | None:
    path = urlsplit(url).path
    last = path.rstrip("/").rsplit("/", 1)[-1] if path else ""
    return unquote(last) or None


#: The extensions of the types most often served without a file name. Read before
#: :mod:`mimetypes`, whose answers depend on the machine's /etc/mime.types and, for some types,
#: on its order (text/plain is ".txt" or ".bat", image/jpeg ".jpg" or ".jpe").
_TYPE_EXTENSIONS = {
    "text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt",
    "text/css": ".css", "text/csv": ".csv", "text/xml": ".xml", "application/xml": ".xml",
    "application/json": ".json", "text/javascript": ".js", "application/javascript": ".js",
    "application/pdf": ".pdf", "application/zip": ".zip", "application/gzip": ".gz",
    "application/x-tar": ".tar", "application/x-7z-compressed": ".7z",
    "application/vnd.rar": ".rar", "application/x-iso9660-image": ".iso",
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "image/svg+xml": ".svg", "audio/mpeg": ".mp3", "audio/ogg": ".ogg", "video/mp4": ".mp4",
    "video/webm": ".webm", "video/x-matroska": ".mkv",
}
#: Types that say nothing about the content: no extension is made up from them.
_NO_EXTENSION = {"application/octet-stream", "binary/octet-stream", "application/unknown"}


def extension_for_type(content_type: str | None) -> str | None:
    """".html" for "text/html; charset=utf-8"; None for an unknown or a say-nothing type."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if not mime or "/" not in mime or mime in _NO_EXTENSION:
        return None
    return _TYPE_EXTENSIONS.get(mime) or mimetypes.guess_extension(mime, strict=False)


def choose_name(
    requested: str | None, content_disposition: str | None, url: str,
    content_type: str | None = None,
) -> str:
    """The user's name, else the server's Content-Disposition name, else the URL's; sanitised.

    A name taken from the URL that has no extension ("http://host/" → "download",
    "http://host/api/index") gets the one its Content-Type says, as browsers do: a file
    named by its type opens with the right program.
    """
    server_name = name_from_content_disposition(content_disposition)
    for candidate in (requested, server_name):
        if candidate:
            return sanitize(candidate)
    from_url = name_from_url(url)
    name = sanitize(from_url) if from_url else FALLBACK_NAME
    extension = extension_for_type(content_type)
    if extension and "." not in name.lstrip("_"):
        name = _truncate(name + extension)
    return name


def numbered(name: str, n: int) -> str:
    """'name.ext' → 'name (n).ext' (the browsers' convention); '.tar.gz' kept together."""
    if n == 0:
        return name
    lower = name.lower()
    for double in (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"):
        if lower.endswith(double):
            return f"{name[: -len(double)]} ({n}){name[-len(double):]}"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


def numbered_within_limit(name: str, n: int) -> str:
    """numbered(name, n), the name cut until the whole fits in MAX_NAME_BYTES."""
    candidate = numbered(name, n)
    while len(candidate.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
        candidate = numbered(name, n)
    return candidate
