"""Real web servers (nginx, Apache, lighttpd, Caddy), as users meet them.

Each server is its Debian package's binary run directly as the tests' child process, never
its system service: on 127.0.0.1, two free ports (plain HTTP and TLS), its own config file,
pid file and logs in a temporary folder, stopped at the end of the session. All four serve
one document root, made once:

- ``/big.bin``: 8 MiB of random bytes (ranges, ETag, Last-Modified as the server makes them);
- ``/text.txt``: 4 MiB of text, which every server compresses with gzip when asked;
- ``/named/big.bin``: the same bytes with ``Content-Disposition: attachment;
  filename="named.bin"``;
- ``/redir``: a 302 to ``/big.bin``; ``/xredir``: a 302 to the TLS port's ``/big.bin`` (another
  origin: RFC 6454 §4, scheme and port differ);
- ``/private/secret.bin``: behind HTTP Basic auth (USER / PASSWORD);
- anything a test writes under ``www`` (a file it replaces between two runs).

The TLS port uses a self-signed certificate for 127.0.0.1 made at test time with
``cryptography``; the tests trust it through SSL_CERT_FILE (truststore, like OpenSSL, reads
it), so that TLS is verified as for a real site, and check that without it Freight refuses.

Every server logs, per request: path, Range header, status, body bytes sent; ``log()`` reads
them back so that a test can tell a resume from a restart and count the bytes served.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from engine import conftest as engine_conftest

BIG = 8 << 20
TEXT = 4 << 20
USER, PASSWORD = "alice", "s3cret-pw"
SERVERS = ["nginx", "apache2", "lighttpd", "caddy"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Hit:
    path: str
    range: str | None
    status: int
    sent: int
    authorized: bool  # the request carried an Authorization header


@dataclass
class Server:
    name: str
    root: Path  # the server's own folder (config, logs)
    www: Path
    port: int
    tls_port: int
    cert: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    def settled_log(self) -> list[Hit]:
        """The log once no line came for a while: a server writes a line when it notices a
        connection's end (after a kill: a moment later). lighttpd buffers its log for seconds
        and flushes it on SIGHUP (it reopens its logs)."""
        quiet = 0.4
        deadline = time.monotonic() + 10
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.access_log.stat().st_size if self.access_log.exists() else 0
            if self.name == "lighttpd" and self.proc is not None:
                self.proc.send_signal(signal.SIGHUP)
            if size != last:
                last, since = size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            time.sleep(0.05)
        return self.log()

    def log(self) -> list[Hit]:
        """Every request logged so far (servers write their log line when a response ends)."""
        if not self.access_log.exists():
            return []
        hits = []
        for line in self.access_log.read_text().splitlines():
            if not line.strip():
                continue
            if self.name == "caddy":
                entry = json.loads(line)
                if "request" not in entry:
                    continue
                headers = entry["request"].get("headers", {})
                ranges = headers.get("Range")
                hits.append(Hit(entry["request"]["uri"], ranges[0] if ranges else None,
                                int(entry["status"]), int(entry.get("size", 0)),
                                "Authorization" in headers))
                continue
            path, ranged, status, sent, auth = line.split("\t")[:5]
            hits.append(Hit(path, None if ranged in ("-", "") else ranged, int(status),
                            0 if sent in ("-", "") else int(sent), auth not in ("-", "")))
        return hits


def _make_tree(base: Path) -> tuple[Path, Path, Path]:
    """The shared document root, the certificate and its key."""
    www = base / "www"
    (www / "named").mkdir(parents=True)
    (www / "private").mkdir()
    big = os.urandom(BIG)
    (www / "big.bin").write_bytes(big)
    (www / "named" / "big.bin").write_bytes(big)
    (www / "private" / "secret.bin").write_bytes(os.urandom(1 << 20))
    words = [b"freight", b"range", b"segment", b"resume", b"header", b"server", b"byte"]
    rnd = os.urandom(TEXT // 6)
    text = b" ".join(words[b % len(words)] for b in rnd)[:TEXT]
    (www / "text.txt").write_bytes(text)
    cert, key = _self_signed(base)
    # The servers drop root for a worker user: the tree must be readable by anyone. Files
    # look long uploaded: Apache makes the validators of a file younger than a second weak
    # (the young-file test in test_realservers.py is about that).
    past = time.time() - 1000
    for folder, _, names in os.walk(base):
        os.chmod(folder, 0o755)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o644)
            os.utime(os.path.join(folder, name), (past, past))
    return www, cert, key


def _self_signed(base: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = base / "cert.pem", base / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (base / "both.pem").write_bytes(cert_path.read_bytes() + key_path.read_bytes())
    return cert_path, key_path


# -- one config per server --------------------------------------------------------------------

DISPOSITION = 'attachment; filename="named.bin"'


def _nginx(s: Server, key: Path) -> list[str]:
    (s.root / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    temp = "\n".join(f"  {kind}_temp_path {s.root}/tmp-{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (s.root / "nginx.conf").write_text(f"""
daemon off;
pid {s.root}/nginx.pid;
error_log {s.root}/error.log;
worker_processes 2;
events {{ worker_connections 256; }}
http {{
{temp}
  types {{ text/plain txt; application/octet-stream bin; }}
  log_format ranges "$uri\\t$http_range\\t$status\\t$body_bytes_sent\\t$http_authorization";
  access_log {s.root}/access.log ranges;
  gzip on;
  gzip_types text/plain;
  server {{
    listen 127.0.0.1:{s.port};
    listen 127.0.0.1:{s.tls_port} ssl;
    ssl_certificate {s.cert};
    ssl_certificate_key {key};
    root {s.www};
    location = /redir {{ return 302 /big.bin; }}
    location = /xredir {{ return 302 {s.tls_url}/big.bin; }}
    location /named/ {{ add_header Content-Disposition '{DISPOSITION}'; }}
    location /private/ {{ auth_basic "freight"; auth_basic_user_file {s.root}/htpasswd; }}
  }}
}}
""")
    return ["nginx", "-p", str(s.root), "-c", str(s.root / "nginx.conf"),
            "-e", str(s.root / "error.log")]


def _apache(s: Server, key: Path) -> list[str]:
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    (s.root / "htpasswd").write_text(f"{USER}:{{SHA}}{digest}\n")
    (s.root / "run").mkdir()
    modules = ["mpm_event", "authz_core", "authn_core", "authn_file", "auth_basic",
               "authz_user", "mime", "alias", "headers", "filter", "deflate", "ssl",
               "socache_shmcb", "log_config"]
    loads = "\n".join(
        f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so" for m in modules
        if m != "log_config" or Path("/usr/lib/apache2/modules/mod_log_config.so").exists()
    )
    (s.root / "apache2.conf").write_text(f"""
ServerRoot {s.root}
ServerName 127.0.0.1
Listen 127.0.0.1:{s.port}
Listen 127.0.0.1:{s.tls_port}
{loads}
PidFile {s.root}/apache2.pid
DefaultRuntimeDir {s.root}/run
Mutex file:{s.root}/run default
ErrorLog {s.root}/error.log
LogFormat "%U\\t%{{Range}}i\\t%>s\\t%B\\t%{{Authorization}}i" ranges
CustomLog {s.root}/access.log ranges
User nobody
Group nogroup
TypesConfig /etc/mime.types
AddType application/octet-stream .bin
DocumentRoot {s.www}
<Directory {s.www}>
  Require all granted
</Directory>
Redirect 302 /redir /big.bin
Redirect 302 /xredir {s.tls_url}/big.bin
<Location /named/>
  Header set Content-Disposition "attachment; filename=\\"named.bin\\""
</Location>
<Location /private/>
  AuthType Basic
  AuthName freight
  AuthUserFile {s.root}/htpasswd
  Require valid-user
</Location>
AddOutputFilterByType DEFLATE text/plain
SSLSessionCache none
<VirtualHost 127.0.0.1:{s.tls_port}>
  SSLEngine on
  SSLCertificateFile {s.cert}
  SSLCertificateKeyFile {key}
</VirtualHost>
""")
    return ["apache2", "-f", str(s.root / "apache2.conf"), "-DFOREGROUND"]


def _lighttpd(s: Server, key: Path) -> list[str]:
    (s.root / "users").write_text(f"{USER}:{PASSWORD}\n")
    # It drops root (a file mode 000 is then refused, as by the others), and reopens its
    # logs on SIGHUP as that user.
    for log in ("access.log", "error.log"):
        (s.root / log).touch()
        os.chmod(s.root / log, 0o666)
    (s.root / "lighttpd.conf").write_text(f"""
server.document-root = "{s.www}"
server.bind = "127.0.0.1"
server.port = {s.port}
server.pid-file = "{s.root}/lighttpd.pid"
server.username = "nobody"
server.groupname = "nogroup"
server.stat-cache-engine = "disable"  # never serve a file from a descriptor kept open
server.errorlog = "{s.root}/error.log"
server.modules = ("mod_access", "mod_auth", "mod_authn_file", "mod_deflate", "mod_openssl",
                  "mod_redirect", "mod_setenv", "mod_accesslog")
mimetype.assign = (".txt" => "text/plain", ".bin" => "application/octet-stream")
accesslog.filename = "{s.root}/access.log"
accesslog.format = "%U\\t%{{Range}}i\\t%>s\\t%b\\t%{{Authorization}}i"
deflate.mimetypes = ("text/plain")
deflate.allowed-encodings = ("gzip")
url.redirect = ("^/redir$" => "/big.bin", "^/xredir$" => "{s.tls_url}/big.bin")
url.redirect-code = 302
$HTTP["url"] =~ "^/named/" {{
  setenv.add-response-header = ("Content-Disposition" => "attachment; filename=\\"named.bin\\"")
}}
auth.backend = "plain"
auth.backend.plain.userfile = "{s.root}/users"
auth.require = ("/private/" => ("method" => "basic", "realm" => "freight",
                                "require" => "valid-user"))
$SERVER["socket"] == "127.0.0.1:{s.tls_port}" {{
  ssl.engine = "enable"
  ssl.pemfile = "{s.cert}"
  ssl.privkey = "{key}"
}}
""")
    return ["lighttpd", "-D", "-f", str(s.root / "lighttpd.conf")]


def _caddy(s: Server, key: Path) -> list[str]:
    hashed = subprocess.run(
        ["caddy", "hash-password", "--plaintext", PASSWORD], capture_output=True, text=True,
        check=True, env=_caddy_env(s),
    ).stdout.strip()
    site = f"""
  root * {s.www}
  encode gzip
  redir /redir /big.bin 302
  redir /xredir {s.tls_url}/big.bin 302
  # Caddy runs as root here and reads a file of mode 000: a marker file refuses it instead.
  @expired file {{path}}.expired
  respond @expired 403
  header /named/* Content-Disposition "attachment; filename=\\"named.bin\\""
  basicauth /private/* {{
    {USER} {hashed}
  }}
  log {{
    output file {s.root}/access.log
    format json
  }}
  file_server
"""
    (s.root / "Caddyfile").write_text(f"""
{{
  admin off
  auto_https off
  storage file_system {s.root}/caddy-data
}}
http://127.0.0.1:{s.port} {{
{site}
}}
https://127.0.0.1:{s.tls_port} {{
  tls {s.cert} {key}
{site}
}}
""")
    return ["caddy", "run", "--config", str(s.root / "Caddyfile"), "--adapter", "caddyfile"]


def _caddy_env(s: Server) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(s.root), XDG_DATA_HOME=str(s.root / "data"),
               XDG_CONFIG_HOME=str(s.root / "config"))
    return env


CONFIGS = {"nginx": _nginx, "apache2": _apache, "lighttpd": _lighttpd, "caddy": _caddy}


def _wait_listening(server: Server, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc is not None
        if server.proc.poll() is not None:
            errors = (server.root / "error.log")
            detail = errors.read_text() if errors.exists() else ""
            raise RuntimeError(f"{server.name} exited ({server.proc.returncode}): {detail}")
        try:
            for port in (server.port, server.tls_port):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not listen within {timeout}s")


@pytest.fixture(scope="session")
def tree() -> Iterator[tuple[Path, Path, Path, Path]]:
    base = Path(tempfile.mkdtemp(prefix="freight-realservers-"))
    os.chmod(base, 0o755)
    www, cert, key = _make_tree(base)
    yield base, www, cert, key
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", params=SERVERS)
def server(request: pytest.FixtureRequest, tree: tuple[Path, Path, Path, Path]) -> Iterator[Server]:
    name = request.param
    if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists():
        if os.environ.get("CI") == "true":  # .ci/run installs them: never skipped in CI
            pytest.fail(f"{name} is missing; .ci/run installs the Debian package {name}")
        pytest.skip(f"{name} is not installed (Debian package {name})")
    base, www, cert, key = tree
    root = base / name
    root.mkdir()
    os.chmod(root, 0o755)
    server = Server(name, root, www, free_port(), free_port(), cert)
    argv = CONFIGS[name](server, key)
    env = _caddy_env(server) if name == "caddy" else dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    with open(root / "stdout.log", "wb") as output:
        server.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT)
    try:
        _wait_listening(server)
        yield server
    finally:
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


# -- freight get, as in tests/engine: its fixtures, imported so that pytest finds them here --

fr = engine_conftest.fr
kill_after = engine_conftest.kill_after
