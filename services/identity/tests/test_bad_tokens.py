"""Every kind of bad token gets 401 problem+json from a real identity route.

The server is identity in development mode, verifying through its own JWKS
endpoint over HTTP, with audience and authorized-party checks switched on.
Forgeries are built from the server's real key file, so each one is wrong in
exactly one way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import AUDIENCE, FRONTEND, DevServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def claims(server: DevServer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": server.settings.jwt_issuer,
        "sub": "user_forged",
        "aud": AUDIENCE,
        "azp": FRONTEND,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "public_metadata": {"role": "admin"},
    }
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def signed(server: DevServer, **changes: Any) -> str:
    return server.keys.load_or_create().sign(claims(server, **changes))


def alg_none(server: DevServer) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": server.keys.load_or_create().kid}
    return f"{b64url_json(header)}.{b64url_json(claims(server))}."


def alg_confusion(server: DevServer) -> str:
    """HS256 keyed with the public key that anyone can read from the JWKS."""
    key = server.keys.load_or_create()
    pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims(server))}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def tampered(server: DevServer) -> str:
    header, payload, sig = signed(server, public_metadata={"role": "viewer"}).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["public_metadata"]["role"] = "admin"
    return f"{header}.{b64url_json(body)}.{sig}"


def stranger_key(kid: str) -> Callable[[DevServer], str]:
    def forge(server: DevServer) -> str:
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        actual = server.keys.load_or_create().kid if kid == "current" else kid
        return jwt.encode(claims(server), stranger, algorithm="RS256", headers={"kid": actual})

    return forge


BAD_TOKENS: dict[str, Callable[[DevServer], str]] = {
    "alg-none": alg_none,
    "alg-confusion-hs256-with-public-key": alg_confusion,
    "expired": lambda s: signed(s, exp=int(time.time()) - 120),
    "nbf-in-the-future": lambda s: signed(s, nbf=int(time.time()) + 600),
    "wrong-issuer": lambda s: signed(s, iss="https://evil.example"),
    "wrong-audience": lambda s: signed(s, aud="another-api"),
    "no-audience": lambda s: signed(s, aud=None),
    "wrong-azp": lambda s: signed(s, azp="https://evil.example"),
    "no-azp": lambda s: signed(s, azp=None),
    "tampered-payload": tampered,
    "unknown-kid": stranger_key("not-a-known-kid"),
    "known-kid-wrong-key": stranger_key("current"),
    "no-sub": lambda s: signed(s, sub=None),
    "no-exp": lambda s: signed(s, exp=None),
    "empty-sub": lambda s: signed(s, sub=""),
    "whitespace-sub": lambda s: signed(s, sub=" "),
    "exp-as-numeric-string": lambda s: signed(s, exp=str(int(time.time()) + 300)),
    "iat-as-numeric-string": lambda s: signed(s, iat=str(int(time.time()))),
    "nbf-as-numeric-string": lambda s: signed(s, nbf=str(int(time.time()))),
    "garbage": lambda s: "garbage",
    "three-garbage-parts": lambda s: "a.b.c",
}

BAD_HEADERS: dict[str, Callable[[str], dict[str, str]]] = {
    "no-authorization-header": lambda token: {},
    "token-without-bearer": lambda token: {"Authorization": token},
    "other-scheme": lambda token: {"Authorization": f"Token {token}"},
    "basic-auth": lambda token: {"Authorization": "Basic dXNlcjpwYXNz"},
    "bearer-without-token": lambda token: {"Authorization": "Bearer"},
    "empty-header": lambda token: {"Authorization": ""},
}


def assert_401(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith('Bearer realm="studio"')
    body: dict[str, Any] = resp.json()
    assert body["type"] == "urn:studio:problem:unauthorized"
    assert body["status"] == 401
    assert body["instance"] == "/api/me"
    return body


async def test_a_good_token_passes(dev_server):
    """The control: the forgeries below differ from this in one thing each."""
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        r = await c.get("/api/me", headers={"Authorization": f"Bearer {signed(dev_server)}"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "admin"


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_token_is_401(dev_server, kind):
    token = BAD_TOKENS[kind](dev_server)
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        r = await c.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    body = assert_401(r)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert body["detail"]


@pytest.mark.parametrize("kind", sorted(BAD_HEADERS))
async def test_missing_bearer_is_401(dev_server, kind):
    headers = BAD_HEADERS[kind](signed(dev_server))
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        assert_401(await c.get("/api/me", headers=headers))


async def test_an_empty_subject_creates_no_user(dev_server, engine):
    from sqlalchemy import text

    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        assert_401(
            await c.get(
                "/api/me", headers={"Authorization": f"Bearer {signed(dev_server, sub='')}"}
            )
        )
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM identity.users WHERE clerk_id = ''"))
    assert count == 0
