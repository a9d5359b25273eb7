"""Secrets at rest and TLS.

- Cookies and Authorization headers given to ``add`` are stored only sealed (AES-256-GCM,
  secrets.Sealer); the key is in the keyring (here: the 0600 file fallback). Neither the
  database, its WAL, the API nor the log ever shows them in clear.
- TLS is verified by default (truststore, the OS store): a self-signed server is refused with
  a clear error; ``insecure`` turns verification off for that one download only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import FaultServer, make_data
from freight.errors import StoreError
from freight.models import DownloadState
from freight.secrets import Sealer
from rawserver import RawServer, read_head, self_signed
from secdaemon import DaemonProcess

SECRET_COOKIE = "sid=COOKIE-SECRET-7f3a9c"
SECRET_AUTH = "Bearer AUTH-SECRET-91be42"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("sec-secrets") / "home").start()
    yield proc
    proc.stop()


def test_cookies_and_authorization_are_never_stored_or_shown_in_clear(
    daemon: DaemonProcess, fault_server: FaultServer, tmp_path: Path
) -> None:
    data = make_data(50_000)
    url = fault_server.add("/private.bin", data, etag="v1",
                           require_header=("Authorization", SECRET_AUTH),
                           require_cookie=SECRET_COOKIE)
    with daemon.connect() as ws:
        added = daemon.call(ws, "add", {"url": url, "dir": str(tmp_path), "cookies":
                                        SECRET_COOKIE, "headers": {"Authorization": SECRET_AUTH}})
        did = added["result"]["id"]
        for _ in range(100):
            got = daemon.call(ws, "get", {"id": did}, id_=2)["result"]
            if got["state"] in ("completed", "failed"):
                break
            time.sleep(0.1)
        shown = json.dumps(got) + json.dumps(daemon.call(ws, "list", id_=3)["result"])
    # The server saw the secrets: they were used...
    assert got["state"] == "completed", got
    assert (tmp_path / "private.bin").read_bytes() == data
    # ...but nothing at rest or on the API holds them in clear.
    for secret in (SECRET_COOKIE, SECRET_AUTH, "COOKIE-SECRET", "AUTH-SECRET"):
        assert secret not in shown
        for path in daemon.home.rglob("*"):
            if path.is_file() and path.name not in ("api-token", "sealing-key"):
                assert secret.encode() not in path.read_bytes(), path


def test_a_sealed_blob_is_authenticated() -> None:
    key = bytes(range(32))
    sealer = Sealer(key)
    sealed = sealer.seal(b"Cookie: a=b")
    assert b"a=b" not in sealed and sealer.open(sealed) == b"Cookie: a=b"
    assert sealer.seal(b"x") != sealer.seal(b"x")  # a fresh nonce each time
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(StoreError):
        sealer.open(tampered)
    with pytest.raises(StoreError):
        Sealer(bytes(32)).open(sealed)  # another key


# -- TLS ----------------------------------------------------------------------------------------




DATA = make_data(100_000, seed=5)


async def serve_file(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        line, headers = await read_head(reader)
        if not line:
            return
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(DATA)}\r\n\r\n".encode() + DATA)
        await writer.drain()


def test_tls_is_verified_by_default_and_insecure_is_per_download(sandbox, tmp_path) -> None:
    with RawServer(serve_file, tls=self_signed(tmp_path)) as srv:
        refused = sandbox.run(srv.url("/f.bin"))
        assert refused.state == DownloadState.FAILED
        assert "certificate" in (refused.error or "").lower()
        assert sandbox.files() == []
        # Only the download that asks for it skips verification.
        download = sandbox.store.add(srv.url("/f.bin"), str(sandbox.folder),
                                     state=DownloadState.ACTIVE, insecure=True)
        from freight.config import EngineSettings
        from freight.engine.transfer import Transfer

        done = Transfer(sandbox.store, download.id, EngineSettings(max_tries=2)).run()
        assert done.state == DownloadState.COMPLETED, done.error
        assert (sandbox.folder / "f.bin").read_bytes() == DATA
        again = sandbox.run(srv.url("/f.bin"))
        assert again.state == DownloadState.FAILED
