"""The daemon's ``add`` and ``refresh`` (so also `freight add`, the extension and the tray)
take URL userinfo out where the URL enters and store it sealed as the download's
``Authorization: Basic`` (RFC 7617): its replies, `freight ls`, `freight add`, its log and its
database never hold the password. A real daemon process against the fault server."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from daemonproc import DaemonProcess, wait_for
from faultserver import FaultServer, make_data

USER, PASSWORD = "bob", "p\u00e4ss:word"  # a ":" in the password stays in it (RFC 7617 §2)
QUOTED = "p%C3%A4ss%3Aword"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, QUOTED, BASIC[6:], f"{USER}:")


def with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{QUOTED}@", 1)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {text[:400]!r}"


def completed(c, download_id: int) -> dict:
    return wait_for(lambda: (d := c.call("get", id=download_id))["state"] == "completed" and d)


def test_add_and_refresh_store_userinfo_sealed(
    daemon: DaemonProcess, fault_server: FaultServer, tmp_path: Path
) -> None:
    data = make_data(200_000, seed=81)
    urls = {name: fault_server.add(f"/{name}.bin", data=data, etag=name,
                                   require_header=("Authorization", BASIC))
            for name in ("api", "cli", "late")}
    tok = fault_server.add("/tok.bin", data=data, etag="tok",
                           require_header=("Authorization", "Bearer tok"))
    dl = tmp_path / "dl"
    with daemon.client() as c:
        added = c.call("add", url=with_userinfo(urls["api"]), dir=str(dl))
        assert_clean(json.dumps(added))
        cli = daemon.cli("add", "-d", str(dl), with_userinfo(urls["cli"]))
        assert cli.returncode == 0, cli
        assert_clean(cli.stdout + cli.stderr)
        assert urls["cli"] in cli.stdout  # it says which URL, the clean one
        explicit = c.call("add", url=with_userinfo(tok), dir=str(dl),
                          headers={"Authorization": "Bearer tok"})["id"]
        # refresh: a download added without credentials gets them from its fresh link.
        late = c.call("add", url=urls["late"], dir=str(dl), paused=True)["id"]
        c.call("refresh", id=late, url=with_userinfo(urls["late"]))
        rows = [completed(c, i) for i in (added["id"], 2, explicit, late)]
        assert [r["url"] for r in rows] == [urls["api"], urls["cli"], tok, urls["late"]]
        for r in rows:
            assert Path(r["path"]).read_bytes() == data
        assert_clean(json.dumps(rows))
        assert_clean(json.dumps(c.call("list")))
        # A download that never ran has no name yet: `freight ls` shows its URL, the clean one.
        c.call("add", url=with_userinfo(fault_server.url("/never.bin")), dir=str(dl), paused=True)
    seen = fault_server.stats("/tok.bin").headers
    assert seen and all(h.get("authorization") == "Bearer tok" for h in seen)  # explicit wins
    ls = daemon.cli("ls")
    assert ls.returncode == 0, ls
    assert "never.bin" in ls.stdout, ls
    assert_clean(ls.stdout + ls.stderr)
    assert daemon.stop() == 0
    checked = 0
    for path in daemon.home.rglob("*"):  # database, WAL, log, the daemon's stderr
        if path.is_file() and "secrets" not in path.parts and dl not in path.parents:
            assert_clean(path.read_bytes().decode("latin-1"))
            checked += 1
    assert daemon.paths.log_file.exists() and checked >= 2
