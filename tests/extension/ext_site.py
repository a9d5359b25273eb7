"""A small web site for the browser tests, on 127.0.0.1 port 0.

It serves what a real download page has: an HTML page with links, files sent as attachments
(with Range support, so that the daemon can split them), an auth-only file that needs the
HttpOnly session cookie the page sets, and a form whose POST answer is a download. Every
request is recorded (path, method, user agent, cookies) so a test can tell who fetched what.
For the SameSite tests: `/samesite.html` sets a Strict, a Lax and a plain cookie, and
`/links.html` lists the absolute links in `Site.links` (a page of one site linking to another)
and the frames in `Site.frames`.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

SESSION = "s3cr3t-session"


def make_bytes(name: str, size: int) -> bytes:
    """Deterministic, incompressible content for a file name."""
    return random.Random(name).randbytes(size)


@dataclass
class Seen:
    method: str
    path: str
    user_agent: str
    cookie: str
    range: str
    fetch_mode: str = ""  # Sec-Fetch-Mode: browsers send it, the daemon does not

    def cookie_names(self) -> set[str]:
        return {p.split("=", 1)[0].strip() for p in self.cookie.split(";") if p.strip()}


@dataclass
class Site:
    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # element id → href, for /links.html
    frames: dict[str, str] = field(default_factory=dict)  # element id → iframe src, likewise
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def add(self, name: str, size: int) -> str:
        """Publish a file; returns its sha256."""
        self.files[name] = make_bytes(name, size)
        return hashlib.sha256(self.files[name]).hexdigest()

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def base_as(self, host: str) -> str:
        """The base URL under another host name for the same server (`localhost`: another site)."""
        assert self.server is not None
        return f"http://{host}:{self.server.server_address[1]}"

    def hits(self, path: str, method: str = "GET") -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    def start(self) -> Site:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _record(self) -> None:
                with site.lock:
                    site.requests.append(
                        Seen(
                            self.command,
                            urlsplit(self.path).path,
                            self.headers.get("User-Agent", ""),
                            self.headers.get("Cookie", ""),
                            self.headers.get("Range", ""),
                            self.headers.get("Sec-Fetch-Mode", ""),
                        )
                    )

            def _send(self, status: int, body: bytes,
                      headers: dict[str, str] | list[tuple[str, str]]) -> None:
                self.send_response(status)
                for k, v in headers.items() if isinstance(headers, dict) else headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if self.path.startswith(("/files/slow-", "/auth/slow-")):
                    # Paced: the browser cannot finish it before the extension reacts.
                    for i in range(0, len(body), 16384):
                        self.wfile.write(body[i : i + 16384])
                        self.wfile.flush()
                        time.sleep(0.02)
                else:
                    self.wfile.write(body)

            def _file(self, name: str) -> None:
                data = site.files.get(name)
                if data is None:
                    self._send(404, b"no such file", {"Content-Type": "text/plain"})
                    return
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Disposition": f'attachment; filename="{name}"',
                    "Accept-Ranges": "bytes",
                    "ETag": f'"{hashlib.sha256(data).hexdigest()[:16]}"',
                    "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT",
                }
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if m and int(m.group(1)) < len(data):
                    start = int(m.group(1))
                    end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                    self._send(206, data[start : end + 1], headers)
                else:
                    self._send(200, data, headers)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                self._record()
                path = unquote(urlsplit(self.path).path)
                if path == "/page.html":
                    links = "".join(
                        f'<p><a id="f{i}" href="/files/{n}">{n}</a></p>'
                        for i, n in enumerate(sorted(site.files))
                    )
                    body = (
                        "<!doctype html><title>Downloads</title><h1>Files</h1>"
                        f"{links}"
                        '<p><a id="auth" href="/auth/secret.bin">auth only</a></p>'
                        '<p><a id="blob" download="made.txt">blob</a></p>'
                        '<form id="form" method="POST" action="/form"><input name="q" value="1">'
                        '<button id="post">export</button></form>'
                        "<script>const b=new Blob(['made in page']);"
                        "document.getElementById('blob').href=URL.createObjectURL(b);</script>"
                    ).encode()
                    self._send(200, body, {
                        "Content-Type": "text/html; charset=utf-8",
                        # HttpOnly: only chrome.cookies (not page script) can read it.
                        "Set-Cookie": f"session={SESSION}; Path=/; HttpOnly",
                    })
                elif path == "/samesite.html":
                    self._send(200, b"<!doctype html><title>Logged in</title>", [
                        ("Content-Type", "text/html; charset=utf-8"),
                        ("Set-Cookie", "strict_c=S; Path=/; HttpOnly; SameSite=Strict"),
                        ("Set-Cookie", "lax_c=L; Path=/; SameSite=Lax"),
                        ("Set-Cookie", "plain_c=P; Path=/"),  # no SameSite: Lax by default
                    ])
                elif path == "/links.html":
                    body = "<!doctype html><title>Links</title>" + "".join(
                        f'<p><a id="{i}" href="{href}">{i}</a></p>'
                        for i, href in sorted(site.links.items())) + "".join(
                        f'<iframe id="{i}" src="{src}"></iframe>'
                        for i, src in sorted(site.frames.items()))
                    self._send(200, body.encode(), {"Content-Type": "text/html; charset=utf-8"})
                elif path.startswith("/files/"):
                    self._file(path[len("/files/"):])
                elif path.startswith("/auth/"):
                    if f"session={SESSION}" not in self.headers.get("Cookie", ""):
                        self._send(403, b"login first", {"Content-Type": "text/plain"})
                    else:
                        self._file(path[len("/auth/"):])
                else:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})

            def do_POST(self) -> None:
                self._record()
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                if urlsplit(self.path).path == "/form":
                    self._file("export.csv")
                else:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up mid-body (a cancelled download) is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
