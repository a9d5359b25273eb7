"""The one point where secrets are taken out of text before it is stored, logged, returned
by the API, shown in the popup or printed in a terminal.

Two kinds of secret can hide in a text made from an exception or from a request:

- the value of a credential header: the request's secret headers (:data:`freight.headers.
  SECRET_HEADERS`: Cookie, Authorization, Proxy-Authorization) and Set-Cookie, the
  response's form of Cookie (RFC 6265 §4.1) — as a header line (``Cookie: a=b``, the whole
  rest of the line goes, which also covers a repr of a head on one line) or as a quoted
  key of a dict or tuple repr (``'Cookie': 'a=b'``, ``(b'cookie', b'a=b')``, JSON);
- URL userinfo (``scheme://user:password@host``, RFC 3986 §3.2.1), a password in clear.

Each is replaced with :data:`MARKER`; the header's name and the URL's host stay, so the text
still says what went wrong and where. Text without either is returned unchanged.
"""

from __future__ import annotations

import logging
import re

from freight.headers import SECRET_HEADERS

MARKER = "<redacted>"

#: Set-Cookie is not a request header (so not in SECRET_HEADERS, which names what is sealed),
#: but a server's Set-Cookie in an error text is the same secret as the Cookie it becomes.
_NAMES = "|".join(sorted((re.escape(n) for n in SECRET_HEADERS | {"set-cookie"}), key=len,
                         reverse=True))

#: The names as a quick test: most texts (a log line per download) hold none of them.
_LOWER_NAMES = tuple(sorted(n.lower() for n in SECRET_HEADERS | {"set-cookie"}))

#: ``Name: value`` to the end of the line. The name starts a word (not ``X-Cookie``;
#: ``Proxy-Authorization`` is matched whole by its own alternative).
_HEADER_LINE = re.compile(rf"(?i)(?<![\w-])({_NAMES})([ \t]*:)[^\r\n]*")

#: The same in a repr of a head, which shows its line breaks escaped on one line
#: (``...\r\nCookie: a=b\r\n...``): from an escaped line break to the next one.
_ESCAPED_HEADER_LINE = re.compile(
    rf"(?i)(?<=\\[rn])({_NAMES})([ \t]*:)(?:(?!\\r\\n|\\n)[^\r\n])*"
)

#: ``'Name': 'value'`` or ``(b'name', b'value')``: a quoted key, then a quoted value, which
#: may hold escaped quotes (Python's repr, JSON).
_QUOTED_PAIR = re.compile(
    rf"""(?i)(['"])({_NAMES})\1(\s*[:,]\s*b?)(['"])(?:\\.|(?!\4)[^\\])*\4"""
)

#: ``scheme://userinfo@``: the userinfo runs to the last ``@`` before the authority ends
#: (a raw ``@`` in a password is split there by urlsplit too). The scheme is bounded (real
#: ones are short): unbounded, a long run of ``a.a.a...`` would cost quadratic time.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,31}://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")


def redact_text(text: str) -> str:
    """``text`` with every credential header value and URL userinfo replaced by MARKER."""
    if not text:
        return text
    if "@" not in text:
        lowered = text.lower()
        if not any(name in lowered for name in _LOWER_NAMES):
            return text  # neither a userinfo nor a credential header's name: nothing hides
    text = _USERINFO.sub(rf"\1{MARKER}@", text)
    text = _QUOTED_PAIR.sub(rf"\1\2\1\3\4{MARKER}\4", text)
    text = _ESCAPED_HEADER_LINE.sub(rf"\1\2 {MARKER}", text)
    return _HEADER_LINE.sub(rf"\1\2 {MARKER}", text)


def redact_optional(text: str | None) -> str | None:
    """redact_text for a field that may be absent (a download's ``error``)."""
    return None if text is None else redact_text(text)


class RedactingFilter(logging.Filter):
    """A handler's filter that redacts what the record will print: its message with the
    arguments merged in, and the traceback of an exception (whose text may quote a request
    head). It changes the record itself, so that every handler prints the redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # args that do not fit the message: the handler reports it
            return True
        clean = redact_text(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True
