"""Cookie and Authorization headers reach the server but are never stored in clear."""

from __future__ import annotations

import signal

from faultserver import make_data

from .conftest import sha256

COOKIE = "session=zebra-secret-4242"
TOKEN = "Bearer tok-quokka-secret-77"

def raw_database_bytes(fr) -> bytes:
    """The database as it sits on disk: main file, WAL and shared memory."""
    return b"".join(
        p.read_bytes() for p in fr.home.glob("freight.db*") if p.is_file()
    )


def test_secret_headers_are_sent_and_sealed(fr, fault_server, kill_after):
    data = make_data(1024 * 1024, seed=40)
    url = fault_server.add(
        "/members/file.bin", data=data, etag="v1", require_cookie=COOKIE,
        require_header=("Authorization", TOKEN), rate=512 * 1024,
    )
    args = (url, "-x", "2", "-H", f"Cookie: {COOKIE}", "-H", f"Authorization: {TOKEN}",
            "-H", "X-Plain: visible")
    # Interrupt it once so that the resume has to read the sealed headers back.
    proc = fr.start(*args)
    kill_after(proc)
    fr.wait_done(proc, 100_000)
    stopped = fr.finish(proc, signal.SIGINT)
    assert stopped.code == 130, stopped
    res = fr.run(*args)
    assert res.code == 0, res
    assert sha256((fr.dl / "file.bin").read_bytes()) == sha256(data)

    st = fault_server.wait_idle("/members/file.bin")
    assert set(st.statuses) == {206}  # every request carried both secrets (else 403)
    assert all(h.get("x-plain") == "visible" for h in st.headers)

    raw = raw_database_bytes(fr)
    assert b"visible" in raw  # the plain header is stored, so the search itself works
    for secret in ("zebra-secret-4242", "tok-quokka-secret-77"):
        assert secret.encode() not in raw, f"{secret} stored in clear"
        assert secret not in res.stdout and secret not in stopped.stdout
    logs = b"".join(p.read_bytes() for p in (fr.home / "logs").glob("*") if p.is_file())
    assert b"zebra-secret" not in logs and b"tok-quokka" not in logs
