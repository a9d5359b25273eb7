"""The sans-I/O handshake (freight.handshake): proofs, the Authorization syntax, the nonce store.

The real-process side (a daemon, an impostor on a dead daemon's port) is in
tests/security/test_sec_impostor.py.
"""

from __future__ import annotations

import base64

import pytest
from freight import handshake
from freight.errors import AuthError, ImpostorError
from freight.handshake import (
    ClientHandshake,
    Credentials,
    HandshakeError,
    NonceStore,
    client_proof,
    daemon_proof,
    key_id,
    new_nonce,
    nonce_bytes,
    parse_authorization,
    verify_client_proof,
    verify_daemon_proof,
)
from hypothesis import given, settings
from hypothesis import strategies as st

tokens = st.text(min_size=1, max_size=64)
nonces = st.binary(min_size=32, max_size=32).map(
    lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
ports = st.integers(min_value=1, max_value=65535)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- proofs ---------------------------------------------------------------------------------


@settings(max_examples=200)
@given(tokens, tokens, nonces, nonces, nonces, ports, ports)
def test_a_proof_verifies_only_with_the_same_token_nonces_port_and_label(
        token: str, other_token: str, cn: str, dn: str, other: str, port: int,
        other_port: int) -> None:
    proof = client_proof(token, cn, dn, port)
    assert verify_client_proof(token, cn, dn, port, proof)
    # The label: a client proof is never a daemon proof, and the other way round.
    assert not verify_daemon_proof(token, cn, dn, port, proof)
    assert not verify_client_proof(token, cn, dn, port, daemon_proof(token, cn, dn, port))
    if other_token != token:
        assert not verify_client_proof(other_token, cn, dn, port, proof)
    if other != cn:
        assert not verify_client_proof(token, other, dn, port, proof)
    if other != dn:
        assert not verify_client_proof(token, cn, other, port, proof)
    if dn != cn:  # the two nonces are not interchangeable
        assert not verify_client_proof(token, dn, cn, port, proof)
    if other_port != port:
        assert not verify_client_proof(token, cn, dn, other_port, proof)


@given(tokens, nonces, nonces, ports)
def test_a_proof_is_a_base64url_digest_that_does_not_contain_the_token(
        token: str, cn: str, dn: str, port: int) -> None:
    proof = daemon_proof(token, cn, dn, port)
    assert len(base64.urlsafe_b64decode(proof + "=")) == 32
    assert token not in proof or len(token) < 4  # a short token may occur by chance


def test_key_ids_are_short_stable_and_differ_per_token() -> None:
    assert key_id("a" * 43) == key_id("a" * 43)
    assert key_id("a" * 43) != key_id("b" * 43)
    assert handshake.is_key_id(key_id("t"))
    assert len(key_id("t")) == 16


@pytest.mark.parametrize("bad", ["", "short", "A" * 42, "A" * 44, "A" * 42 + "=",
                                 "A" * 42 + "+", "A" * 42 + "B",  # B leaves unused bits set
                                 "A" * 42 + "é"])
def test_a_nonce_has_one_spelling(bad: str) -> None:
    with pytest.raises(HandshakeError):
        nonce_bytes(bad)
    assert len(nonce_bytes(new_nonce())) == 32


def test_forged_proofs_of_the_right_shape_are_refused() -> None:
    cn, dn = new_nonce(), new_nonce()
    assert not verify_daemon_proof("tok", cn, dn, 80, new_nonce())
    assert not verify_daemon_proof("tok", cn, dn, 80, None)
    assert not verify_daemon_proof("tok", cn, dn, 80, "")
    with pytest.raises(HandshakeError):
        daemon_proof("tok", cn, dn, 0)


# -- the Authorization header ---------------------------------------------------------------


@given(nonces, nonces, nonces)
def test_authorization_round_trips(cn: str, dn: str, proof: str) -> None:
    creds = Credentials(cn, dn, proof)
    assert parse_authorization(creds.header()) == creds
    spaced = f"freight  proof={proof} ,nonce={cn},challenge = {dn}"
    assert parse_authorization(spaced) == creds


@pytest.mark.parametrize("value", [
    "Bearer {cn}", "Basic Zm9vOmJhcg==", "", "Freight", "Freight nonce={cn}",
    "Freight nonce={cn}, challenge={dn}",
    "Freight nonce={cn}, challenge={dn}, proof={cn}, proof={cn}",
    "Freight nonce={cn}, challenge={dn}, proof={cn}, extra=1",
    "Freight nonce={cn}, nonce={cn}, proof={cn}",
    'Freight nonce="{cn}", challenge={dn}, proof={cn}',
    "Freight nonce={cn}, challenge=short, proof={cn}",
    "Freight nonce={cn}, challenge={dn}, proof=x",
])
def test_malformed_authorization_is_refused(value: str) -> None:
    cn, dn = new_nonce(), new_nonce()
    with pytest.raises(HandshakeError):
        parse_authorization(value.format(cn=cn, dn=dn))


# -- the nonce store ------------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60))
def test_a_daemon_nonce_is_accepted_once_for_its_client_nonce(picks: list[int]) -> None:
    store = NonceStore(clock=FakeClock())
    clients = [new_nonce() for _ in range(4)]
    issued = [(store.issue(clients[i]), clients[i]) for i in picks]
    for dn, cn in issued:
        other = next(c for c in clients if c != cn)
        assert not store.redeem(dn, other)  # issued to another client: refused, and spent
        assert not store.redeem(dn, cn)
    again = [(store.issue(clients[i]), clients[i]) for i in picks]
    assert all(store.redeem(dn, cn) for dn, cn in again)
    assert not any(store.redeem(dn, cn) for dn, cn in again)
    assert len(store) == 0


def test_a_daemon_nonce_expires() -> None:
    clock = FakeClock()
    store = NonceStore(ttl=30.0, clock=clock)
    cn = new_nonce()
    early, late = store.issue(cn), store.issue(cn)
    clock.now += 29.9
    assert store.redeem(early, cn)
    clock.now += 0.2
    assert not store.redeem(late, cn)
    assert not store.redeem(new_nonce(), cn)  # never issued


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=200))
def test_the_store_stays_bounded_and_drops_the_oldest(limit: int, flood: int) -> None:
    store = NonceStore(limit=limit, clock=FakeClock())
    cn = new_nonce()
    issued = [store.issue(cn) for _ in range(flood)]
    assert len(store) == min(limit, flood)
    kept = issued[-limit:] if flood else []
    dropped = issued[:-limit] if flood > limit else []
    assert not any(store.redeem(dn, cn) for dn in dropped)
    assert all(store.redeem(dn, cn) for dn in kept)


# -- the client's side ----------------------------------------------------------------------


def answer_from_daemon(token: str, attempt: ClientHandshake, port: int) -> dict[str, str]:
    store = NonceStore()
    return handshake.challenge_answer(token, attempt.nonce, store, port)


def test_the_client_accepts_the_real_daemon_and_answers_it() -> None:
    attempt = ClientHandshake("the-token", 6817, "ws://127.0.0.1:6817/")
    assert attempt.challenge_headers() == {"Freight-Nonce": attempt.nonce,
                                           "Freight-Key": key_id("the-token")}
    answer = answer_from_daemon("the-token", attempt, 6817)
    creds = parse_authorization(attempt.authorization(answer))
    assert creds.nonce == attempt.nonce and creds.challenge == answer["nonce"]
    assert verify_client_proof("the-token", creds.nonce, creds.challenge, 6817, creds.proof)
    assert "the-token" not in attempt.authorization(answer)


@pytest.mark.parametrize("forge", [
    lambda a: {**a, "proof": new_nonce()},  # plausible-looking, made up
    lambda a: {**a, "proof": a["proof"][:-1] + ("A" if a["proof"][-1] != "A" else "Q")},
    lambda a: {**a, "nonce": new_nonce()},  # a proof for another nonce
    lambda a: {**a, "proof": None},
    lambda a: {k: v for k, v in a.items() if k != "proof"},
    lambda a: {**a, "nonce": "x"},
    lambda a: [a],
    lambda a: None,
])
def test_an_impostor_answer_is_refused_with_the_impostor_error(forge) -> None:  # type: ignore[no-untyped-def]
    attempt = ClientHandshake("the-token", 6817, "ws://127.0.0.1:6817/")
    answer = answer_from_daemon("the-token", attempt, 6817)
    with pytest.raises(ImpostorError) as refused:
        attempt.authorization(forge(answer))
    assert "not this user's Freight daemon" in str(refused.value)
    assert "nothing was sent" in str(refused.value)


def test_a_relayed_proof_for_another_port_is_refused() -> None:
    # An impostor on 6817 relays the client's challenge to the real daemon on 7000: the
    # daemon's proof is for 7000, so the client refuses it.
    attempt = ClientHandshake("the-token", 6817, "ws://127.0.0.1:6817/")
    with pytest.raises(ImpostorError):
        attempt.authorization(answer_from_daemon("the-token", attempt, 7000))


def test_a_daemon_with_another_token_gives_the_auth_error() -> None:
    attempt = ClientHandshake("old-token", 6817, "ws://127.0.0.1:6817/")
    answer = answer_from_daemon("new-token", attempt, 6817)
    with pytest.raises(AuthError) as refused:
        attempt.authorization(answer)
    assert not isinstance(refused.value, ImpostorError)
    assert "does not match the daemon's" in str(refused.value)
