"""The development key files: created once, private, shared, rotated with a grace period."""

from __future__ import annotations

import stat
import threading

import jwt
import pytest

from studio_identity.keys import DevKeyStore, public_jwk


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_a_private_key_file_and_its_directories(tmp_path):
    path = tmp_path / "a" / "b" / "jwt-key.pem"
    key = DevKeyStore(path).load_or_create()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    # The kid is the RFC 7638 thumbprint: the same key always gets the same kid.
    assert key.kid == public_jwk(key.private_key.public_key())["kid"]
    assert DevKeyStore(path).load_or_create().kid == key.kid


def test_two_processes_starting_at_once_share_one_key(tmp_path):
    path = tmp_path / "jwt-key.pem"
    kids: list[str] = []
    threads = [
        threading.Thread(target=lambda: kids.append(DevKeyStore(path).load_or_create().kid))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(kids)) == 1


def test_a_key_file_readable_by_others_is_tightened(tmp_path):
    path = tmp_path / "jwt-key.pem"
    DevKeyStore(path).load_or_create()
    path.chmod(0o644)
    DevKeyStore(path).load_or_create()
    assert mode(path) == 0o600


def test_tokens_verify_with_the_published_key(tmp_path):
    store = DevKeyStore(tmp_path / "k.pem")
    token = store.sign({"sub": "u", "iss": "i"})
    assert jwt.get_unverified_header(token)["kid"] == store.load_or_create().kid
    (jwk,) = store.jwks()["keys"]
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"])["sub"] == "u"


def test_rotation_keeps_the_old_public_key_for_the_grace_period(tmp_path):
    clock = Clock()
    store = DevKeyStore(tmp_path / "k.pem", clock=clock)
    old = store.load_or_create()
    new = store.rotate(grace_seconds=60)
    assert new.kid != old.kid
    assert [k["kid"] for k in store.jwks()["keys"]] == [new.kid, old.kid]
    clock.now += 59
    assert len(store.jwks()["keys"]) == 2
    clock.now += 2
    assert [k["kid"] for k in store.jwks()["keys"]] == [new.kid]
    # Expired keys are dropped from the file at the next rotation.
    newest = store.rotate(grace_seconds=60)
    assert [k["kid"] for k in store.jwks()["keys"]] == [newest.kid, new.kid]


def test_another_process_rotating_is_noticed(tmp_path):
    server = DevKeyStore(tmp_path / "k.pem")
    before = server.load_or_create().kid
    cli = DevKeyStore(tmp_path / "k.pem")
    after = cli.rotate().kid
    assert server.load_or_create().kid == after
    assert {k["kid"] for k in server.jwks()["keys"]} == {before, after}


def test_a_file_that_is_not_an_rsa_key_is_refused(tmp_path):
    path = tmp_path / "k.pem"
    path.write_text("not a key")
    with pytest.raises(ValueError, match=r"PEM|deserialize"):
        DevKeyStore(path).load_or_create()
