"""The mutual challenge-response by which a client and the daemon prove to each other that
they hold the same API token, without either side ever sending it (docs/PROTOCOL.md "Finding
and authenticating to the daemon", docs/SECURITY.md §2). Sans-I/O: the daemon's server and
:func:`freight.client.open_daemon_socket` do the sockets.

Why not a bearer token: daemon.json outlives a daemon killed with SIGKILL, and another local
user who then listens on its port would receive a bearer token from the first client that
trusts the file, and could use it on the real daemon. Here the client first asks
``GET /challenge`` with a fresh nonce and checks the daemon's proof; only then does it answer
the daemon's nonce with its own proof, which is good for that one daemon nonce, on that one
port, once.

    proof = base64url(HMAC-SHA256(token, label || 0x00 || client nonce || daemon nonce || port))

with the nonces as their 32 raw bytes and the port as 2 bytes big-endian. The daemon's and the
client's proofs use different labels, so that a daemon proof can never serve as a client proof
(a reflection: an impostor would otherwise get the real daemon to compute its answer). The
port binds a proof to the listener it was made for: an impostor that relays a challenge to the
real daemon on another port gets a daemon proof that the client refuses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from freight.errors import AuthError, ImpostorError, InputError

NONCE_BYTES = 32
NONCE_TTL = 30.0  # seconds between the challenge and the upgrade, far more than a loopback needs
MAX_PENDING = 256  # daemon nonces kept at most: a flood of challenges cannot grow memory
KEY_ID_CHARS = 16

CHALLENGE_PATH = "/challenge"
NONCE_HEADER = "Freight-Nonce"
KEY_HEADER = "Freight-Key"
SCHEME = "Freight"

_KEY_ID_LABEL = b"freight key id"
_DAEMON_LABEL = b"freight daemon proof 1"
_CLIENT_LABEL = b"freight client proof 1"

_NONCE_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes in base64url, no padding
_KEY_ID_TEXT = re.compile(r"[0-9a-f]{16}")
_PROOF_TEXT = _NONCE_TEXT  # an HMAC-SHA256 is 32 bytes too


class HandshakeError(InputError):
    """A challenge or an Authorization value that does not follow the handshake's syntax."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_nonce() -> str:
    """32 random bytes, base64url without padding (RFC 4648 §5)."""
    return _b64(secrets.token_bytes(NONCE_BYTES))


def nonce_bytes(text: str) -> bytes:
    """The 32 bytes of a nonce in its one canonical spelling; HandshakeError otherwise."""
    if not isinstance(text, str) or not _NONCE_TEXT.fullmatch(text):
        raise HandshakeError("a nonce must be 32 bytes in base64url without padding")
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        raise HandshakeError("a nonce must be 32 bytes in base64url without padding") from None
    if _b64(raw) != text:  # the last character's unused bits must be zero: one spelling only
        raise HandshakeError("a nonce must be 32 bytes in base64url without padding")
    return raw


def key_id(token: str) -> str:
    """A short public fingerprint of the token: tells a client whether it holds the daemon's
    current token (after `freight token --rotate`) and nothing that helps to find it."""
    digest = hmac.new(token.encode(), _KEY_ID_LABEL, hashlib.sha256).hexdigest()
    return digest[:KEY_ID_CHARS]


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID_TEXT.fullmatch(text))


def _proof(label: bytes, token: str, client_nonce: str, daemon_nonce: str, port: int) -> str:
    if not 0 < port < 65536:
        raise HandshakeError(f"port {port} is not a TCP port")
    message = (label + b"\x00" + nonce_bytes(client_nonce) + nonce_bytes(daemon_nonce)
               + port.to_bytes(2, "big"))
    return _b64(hmac.new(token.encode(), message, hashlib.sha256).digest())


def daemon_proof(token: str, client_nonce: str, daemon_nonce: str, port: int) -> str:
    """What the daemon answers a challenge with: it knows the token."""
    return _proof(_DAEMON_LABEL, token, client_nonce, daemon_nonce, port)


def client_proof(token: str, client_nonce: str, daemon_nonce: str, port: int) -> str:
    """What the client upgrades with: it knows the token too."""
    return _proof(_CLIENT_LABEL, token, client_nonce, daemon_nonce, port)


def _verify(expected: str, given: object) -> bool:
    # compare_digest: the time taken does not tell how much of a forged proof was right.
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def verify_daemon_proof(token: str, client_nonce: str, daemon_nonce: str, port: int,
                        proof: object) -> bool:
    return _verify(daemon_proof(token, client_nonce, daemon_nonce, port), proof)


def verify_client_proof(token: str, client_nonce: str, daemon_nonce: str, port: int,
                        proof: object) -> bool:
    return _verify(client_proof(token, client_nonce, daemon_nonce, port), proof)


# -- the Authorization header of the upgrade ----------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """``Authorization: Freight nonce=<client nonce>, challenge=<daemon nonce>, proof=<proof>``
    (RFC 9110 §11.2 auth-params; every value is a base64url token, never quoted)."""

    nonce: str
    challenge: str
    proof: str

    def header(self) -> str:
        return f"{SCHEME} nonce={self.nonce}, challenge={self.challenge}, proof={self.proof}"


_PARAMS = ("nonce", "challenge", "proof")


def parse_authorization(value: str) -> Credentials:
    """Read a ``Freight`` Authorization value strictly: each of the three params exactly once,
    nothing else. HandshakeError says what is wrong (a ``Bearer`` token included)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise HandshakeError(f"the scheme must be {SCHEME} (docs/PROTOCOL.md); bearer tokens"
                             " are not accepted")
    found: dict[str, str] = {}
    for part in rest.split(","):
        name, eq, text = part.strip().partition("=")
        name, text = name.strip().lower(), text.strip()
        if not eq or name not in _PARAMS or name in found:
            raise HandshakeError("expected nonce=..., challenge=..., proof=... once each")
        found[name] = text
    if set(found) != set(_PARAMS):
        raise HandshakeError("expected nonce=..., challenge=..., proof=... once each")
    nonce_bytes(found["nonce"])
    nonce_bytes(found["challenge"])
    if not _PROOF_TEXT.fullmatch(found["proof"]):
        raise HandshakeError("the proof must be 32 bytes in base64url without padding")
    return Credentials(found["nonce"], found["challenge"], found["proof"])


# -- the daemon's side: its nonces --------------------------------------------------------------


class NonceStore:
    """The daemon nonces handed out and not yet used: each is good once, for ``ttl`` seconds,
    with the client nonce it was issued for. At most ``limit`` are kept; the oldest go first,
    so a flood of challenges costs its sender only its own nonces' validity."""

    def __init__(self, *, ttl: float = NONCE_TTL, limit: int = MAX_PENDING,
                 clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._issued: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._issued)

    def issue(self, client_nonce: str) -> str:
        self._expire()
        nonce = new_nonce()
        self._issued[nonce] = (client_nonce, self._clock() + self.ttl)
        while len(self._issued) > self.limit:
            self._issued.popitem(last=False)
        return nonce

    def redeem(self, daemon_nonce: str, client_nonce: str) -> bool:
        """True once for a nonce issued to this client nonce and not expired; it is gone
        afterwards whatever the answer, so a failed proof cannot be tried again on it."""
        self._expire()
        entry = self._issued.pop(daemon_nonce, None)
        return entry is not None and hmac.compare_digest(entry[0], client_nonce)

    def _expire(self) -> None:
        now = self._clock()
        while self._issued:
            oldest = next(iter(self._issued))
            if self._issued[oldest][1] > now:
                break
            del self._issued[oldest]


def challenge_answer(token: str, client_nonce: str, store: NonceStore, port: int
                     ) -> dict[str, str]:
    """The daemon's JSON answer to ``GET /challenge``."""
    nonce = store.issue(client_nonce)
    return {"nonce": nonce, "proof": daemon_proof(token, client_nonce, nonce, port),
            "key": key_id(token)}


# -- the client's side --------------------------------------------------------------------------


class ClientHandshake:
    """One client's attempt: the challenge's headers, then the check of the answer, which
    yields the upgrade's Authorization value or raises before anything more is sent."""

    def __init__(self, token: str, port: int, where: str) -> None:
        self.token = token
        self.port = port
        self.where = where  # the URL, for messages
        self.nonce = new_nonce()

    def challenge_headers(self) -> dict[str, str]:
        return {NONCE_HEADER: self.nonce, KEY_HEADER: key_id(self.token)}

    def authorization(self, answer: object) -> str:
        """The upgrade's ``Authorization`` value for the daemon's JSON ``answer``.

        Raises :class:`~freight.errors.ImpostorError` when the answer proves nothing (whatever
        listens is not this user's daemon) and :class:`~freight.errors.AuthError` when the
        daemon holds another token."""
        impostor = ImpostorError(
            f"whatever listens at {self.where} is not this user's Freight daemon (its answer"
            " proves no knowledge of the token); nothing was sent to it")
        if not isinstance(answer, dict):
            raise impostor
        nonce, proof, key = answer.get("nonce"), answer.get("proof"), answer.get("key")
        if not (isinstance(nonce, str) and _NONCE_TEXT.fullmatch(nonce)):
            raise impostor
        try:
            nonce_bytes(nonce)
        except HandshakeError:
            raise impostor from None
        if key != key_id(self.token):
            raise AuthError("the token does not match the daemon's (rotated? run the command"
                            " again; else restart the daemon: freight stop && freight start)",
                            status=401)
        if not verify_daemon_proof(self.token, self.nonce, nonce, self.port, proof):
            raise impostor
        mine = client_proof(self.token, self.nonce, nonce, self.port)
        return Credentials(self.nonce, nonce, mine).header()
