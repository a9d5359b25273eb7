"""Explored: whatever the user name and password, the daemon's ``add`` and ``refresh``
(freight.daemon.actions) store the URL without its userinfo and the credential as the sealed
``Authorization: Basic`` (RFC 7617), an explicit Authorization winning; the replies and the
database file hold neither the password nor its Basic token in clear. In process: a real
SQLite file, a real AES-GCM sealer, the real scheduler with the fake transfer of
test_scheduler (nothing is fetched)."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

from freight.daemon.actions import Actions
from freight.secrets import Sealer
from freight.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_scheduler import run_scheduler

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=10)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=TEXT, password=TEXT.map(lambda t: "pw\u00df-" + t), fresh=TEXT,
       explicit=st.booleans(), refresh_headers=st.booleans())
def test_userinfo_is_stored_sealed_never_in_clear(user, password, fresh, explicit,
                                                   refresh_headers) -> None:
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    fresh_password = "new\u00df-" + fresh
    clean, clean2 = "http://files.test:8080/a/f.bin?sig=1", "http://files.test:8080/a/f.bin?sig=2"
    secrets = [password, quote(password, safe=""), basic(user, password)[6:],
               fresh_password, quote(fresh_password, safe=""), basic(user, fresh_password)[6:]]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "freight.db"
        store = Store(db, sealer=Sealer(os.urandom(32)))
        try:
            async def body(scheduler, transfers):
                actions = Actions(scheduler, default_dir=lambda: tmp)
                headers = {"authorization": "Bearer tok"} if explicit else {}
                added = actions.add({"url": f"http://{userinfo}@files.test:8080/a/f.bin?sig=1",
                                     "paused": True, "headers": headers})
                first = actions.get(added["id"])
                want = "Bearer tok" if explicit else basic(user, password)
                assert store.get(added["id"]).url == first["url"] == clean
                assert store.secret_headers(added["id"]) == (
                    {"authorization": want} if explicit else {"Authorization": want})
                params = {"id": added["id"], "url": clean2.replace(
                    "http://", f"http://{quote(user, safe='')}:{quote(fresh_password, safe='')}@")}
                if refresh_headers:
                    params["headers"] = {"Authorization": "Bearer new"}
                await actions.refresh(params)
                assert store.get(added["id"]).url == clean2
                sent = store.secret_headers(added["id"])
                assert [v for k, v in sent.items() if k.lower() == "authorization"] == [
                    "Bearer new" if refresh_headers else basic(user, fresh_password)]
                return json.dumps([added, first, actions.get(added["id"]),
                                   actions.list_downloads()])
            _, replies = run_scheduler(store, body)
        finally:
            store.close()
        stored = b"".join(p.read_bytes() for p in Path(tmp).iterdir() if p.is_file())
    for secret in secrets:
        assert secret not in replies
        assert secret.encode() not in stored
