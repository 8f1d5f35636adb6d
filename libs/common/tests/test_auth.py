from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from studio_common.auth import (
    AdminUser,
    CurrentUser,
    EditorUser,
    JwksCache,
    JwtVerifier,
    OptionalUser,
    Principal,
    Role,
)
from studio_common.errors import (
    PROBLEM_CONTENT_TYPE,
    ServiceUnavailable,
    Unauthorized,
    install_problem_handlers,
)
from studio_common.testing.infra import QuietHandler, free_port, http_server
from studio_common.testing.issuer import TestIssuer

AUDIENCE = "studio-api"
FRONTEND = "https://app.studio.test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def claims_for(issuer: TestIssuer, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "sub": "user_forged",
        "iss": issuer.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "aud": issuer.audience,
        "role": "admin",
    }
    body.update(extra)
    return body


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_verifier(issuer: TestIssuer, **kw: Any) -> JwtVerifier:
    cache = JwksCache(issuer.jwks_url, min_refetch_seconds=0)
    if "authorized_parties" not in kw:
        kw.setdefault("audience", issuer.audience)
    return JwtVerifier(cache, issuer=issuer.issuer, **kw)


def build_app(verifier: JwtVerifier) -> FastAPI:
    app = FastAPI()
    app.state.verifier = verifier
    install_problem_handlers(app)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"sub": user.subject, "role": user.role.name, "email": user.email}

    @app.get("/maybe")
    async def maybe(user: OptionalUser) -> dict[str, Any]:
        return {"sub": user.subject if user else None}

    @app.get("/edit")
    async def edit(user: EditorUser) -> dict[str, Any]:
        return {"role": user.role.name}

    @app.get("/admin")
    async def admin(user: AdminUser) -> dict[str, Any]:
        return {"role": user.role.name}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    )


@pytest.fixture
async def client(test_issuer: TestIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_app(make_verifier(test_issuer))) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert resp.headers["www-authenticate"].startswith("Bearer ")
    body: dict[str, Any] = resp.json()
    assert body["type"] == "urn:studio:problem:unauthorized"
    return body


# --- accepted tokens -----------------------------------------------------------


async def test_valid_token_gives_principal(test_issuer: TestIssuer) -> None:
    verifier = make_verifier(test_issuer)
    token = test_issuer.mint("user_1", "editor", email="a@b.test")
    principal = await verifier.verify(token)
    assert (principal.subject, principal.role, principal.email) == (
        "user_1",
        Role.editor,
        "a@b.test",
    )
    assert isinstance(principal, Principal)
    assert principal.claims["sub"] == "user_1"
    assert principal.has_role(Role.viewer)
    assert principal.has_role(Role.editor)
    assert not principal.has_role(Role.admin)


async def test_valid_token_through_route(
    client: httpx.AsyncClient, test_issuer: TestIssuer
) -> None:
    resp = await client.get("/me", headers=bearer(test_issuer.mint("user_2", "admin")))
    assert resp.status_code == 200
    assert resp.json() == {"sub": "user_2", "role": "admin", "email": None}
    # The scheme is case-insensitive.
    resp = await client.get(
        "/me", headers={"Authorization": f"bearer {test_issuer.mint('user_3', 'viewer')}"}
    )
    assert resp.json()["sub"] == "user_3"


@pytest.mark.parametrize("role", [None, "superuser", 3, ""])
async def test_missing_or_unknown_role_is_viewer(test_issuer: TestIssuer, role: Any) -> None:
    token = test_issuer.mint("user_4", role=role)
    assert (await make_verifier(test_issuer).verify(token)).role is Role.viewer


async def test_role_from_nested_claim(test_issuer: TestIssuer) -> None:
    verifier = make_verifier(test_issuer, role_claim="public_metadata.role")
    token = test_issuer.mint("user_5", role="viewer", public_metadata={"role": "editor"})
    assert (await verifier.verify(token)).role is Role.editor
    # The top-level claim is not consulted for a nested path.
    token = test_issuer.mint("user_6", role="admin", public_metadata={})
    assert (await verifier.verify(token)).role is Role.viewer
    token = test_issuer.mint("user_7", role="admin", public_metadata="admin")
    assert (await verifier.verify(token)).role is Role.viewer


async def test_audience_when_configured(test_issuer: TestIssuer) -> None:
    async with client_for(build_app(make_verifier(test_issuer, audience=AUDIENCE))) as c:
        ok = await c.get("/me", headers=bearer(test_issuer.mint("u", aud=AUDIENCE)))
        assert ok.status_code == 200
        ok_list = await c.get("/me", headers=bearer(test_issuer.mint("u", aud=["x", AUDIENCE])))
        assert ok_list.status_code == 200
        assert_401(await c.get("/me", headers=bearer(test_issuer.mint("u", aud="other-api"))))
        assert_401(await c.get("/me", headers=bearer(test_issuer.mint("u", aud=None))))
        assert_401(await c.get("/me", headers=bearer(test_issuer.mint("u"))))


def test_a_verifier_checks_an_audience_or_a_party(test_issuer: TestIssuer) -> None:
    cache = JwksCache(test_issuer.jwks_url)
    with pytest.raises(ValueError, match="STUDIO_JWT_AUDIENCE"):
        JwtVerifier(cache, issuer=test_issuer.issuer)
    with pytest.raises(ValueError, match="STUDIO_JWT_AUDIENCE"):
        JwtVerifier(cache, issuer=test_issuer.issuer, audience="", authorized_parties=[])
    JwtVerifier(cache, issuer=test_issuer.issuer, authorized_parties=[FRONTEND])


async def test_authorized_party_when_configured(test_issuer: TestIssuer) -> None:
    verifier = make_verifier(test_issuer, authorized_parties=[FRONTEND])
    async with client_for(build_app(verifier)) as c:
        ok = await c.get("/me", headers=bearer(test_issuer.mint("u", azp=FRONTEND)))
        assert ok.status_code == 200
        body = assert_401(
            await c.get("/me", headers=bearer(test_issuer.mint("u", azp="https://evil.test")))
        )
        assert "party" in body["detail"]
        assert_401(await c.get("/me", headers=bearer(test_issuer.mint("u"))))


async def test_role_guards(client: httpx.AsyncClient, test_issuer: TestIssuer) -> None:
    viewer = bearer(test_issuer.mint("v", "viewer"))
    editor = bearer(test_issuer.mint("e", "editor"))
    admin = bearer(test_issuer.mint("a", "admin"))

    resp = await client.get("/edit", headers=viewer)
    assert resp.status_code == 403
    assert resp.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert resp.json()["type"] == "urn:studio:problem:forbidden"
    assert "editor" in resp.json()["detail"]

    assert (await client.get("/edit", headers=editor)).json() == {"role": "editor"}
    assert (await client.get("/edit", headers=admin)).json() == {"role": "admin"}
    assert (await client.get("/admin", headers=editor)).status_code == 403
    assert (await client.get("/admin", headers=admin)).status_code == 200
    # No token on a guarded route is 401, not 403.
    assert_401(await client.get("/edit"))


async def test_optional_user(client: httpx.AsyncClient, test_issuer: TestIssuer) -> None:
    assert (await client.get("/maybe")).json() == {"sub": None}
    resp = await client.get("/maybe", headers=bearer(test_issuer.mint("opt")))
    assert resp.json() == {"sub": "opt"}
    # A bad token is not silently treated as anonymous.
    assert_401(await client.get("/maybe", headers=bearer("garbage")))


# --- rejected tokens -----------------------------------------------------------


def forged_none(issuer: TestIssuer) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": issuer.kid}
    return f"{b64url_json(header)}.{b64url_json(claims_for(issuer))}."


def forged_hs256_with_public_key(issuer: TestIssuer) -> str:
    """Algorithm confusion: HMAC keyed with the public key every client can fetch."""
    pem = (
        issuer.keys[issuer.kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims_for(issuer))}"
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def tampered(issuer: TestIssuer) -> str:
    header, payload, sig = issuer.mint("user_t", "viewer").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    return f"{header}.{b64url_json(claims)}.{sig}"


def unknown_kid(issuer: TestIssuer) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims_for(issuer), stranger, algorithm="RS256", headers={"kid": "nope"})


def known_kid_wrong_key(issuer: TestIssuer) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims_for(issuer), stranger, algorithm="RS256", headers={"kid": issuer.kid})


def no_kid(issuer: TestIssuer) -> str:
    return jwt.encode(claims_for(issuer), issuer.keys[issuer.kid], algorithm="RS256")


def signed(issuer: TestIssuer, **claims: Any) -> str:
    body = claims_for(issuer)
    for k, v in claims.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    return jwt.encode(body, issuer.keys[issuer.kid], algorithm="RS256", headers={"kid": issuer.kid})


BAD_TOKENS: dict[str, Any] = {
    "alg-none": forged_none,
    "alg-confusion-hs256": forged_hs256_with_public_key,
    "expired": lambda i: i.mint("u", ttl=-120),
    "nbf-in-future": lambda i: i.mint("u", nbf=int(time.time()) + 600),
    "iat-in-future": lambda i: i.mint("u", iat=int(time.time()) + 600),
    "wrong-issuer": lambda i: i.mint("u", iss="https://evil.test"),
    "tampered-payload": tampered,
    "unknown-kid": unknown_kid,
    "known-kid-wrong-key": known_kid_wrong_key,
    "no-kid": no_kid,
    "no-exp": lambda i: signed(i, exp=None),
    "no-sub": lambda i: signed(i, sub=None),
    "no-iss": lambda i: signed(i, iss=None),
    "no-aud": lambda i: signed(i, aud=None),
    "other-aud": lambda i: signed(i, aud="another-app"),
    "aud-not-a-string": lambda i: signed(i, aud=123),
    "empty-sub": lambda i: signed(i, sub=""),
    "blank-sub": lambda i: signed(i, sub="   "),
    "sub-padded": lambda i: signed(i, sub=" user_x"),
    "sub-control-char": lambda i: signed(i, sub="user\nx"),
    "sub-too-long": lambda i: signed(i, sub="u" * 192),
    "sub-number": lambda i: signed(i, sub=12345),
    "exp-numeric-string": lambda i: signed(i, exp=str(int(time.time()) + 300)),
    "exp-bool": lambda i: signed(i, exp=True),
    "nbf-numeric-string": lambda i: signed(i, nbf=str(int(time.time()))),
    "iat-numeric-string": lambda i: signed(i, iat=str(int(time.time()))),
    "iat-list": lambda i: signed(i, iat=[1]),
    "garbage": lambda i: "garbage",
    "three-garbage-parts": lambda i: "a.b.c",
    "header-not-object": lambda i: f"{b64url(b'[1]')}.{b64url_json({})}.x",
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_token_is_401(
    client: httpx.AsyncClient, test_issuer: TestIssuer, kind: str
) -> None:
    token = BAD_TOKENS[kind](test_issuer)
    resp = await client.get("/me", headers=bearer(token))
    body = assert_401(resp)
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert body["detail"]
    # The same token on a role-guarded route is 401 too, never 403 or 200.
    assert_401(await client.get("/admin", headers=bearer(token)))


@pytest.mark.parametrize(
    "header",
    ["Token abc", "Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "abc.def.ghi"],
)
async def test_malformed_authorization_header_is_401(
    client: httpx.AsyncClient, header: str
) -> None:
    body = assert_401(await client.get("/me", headers={"Authorization": header}))
    assert "Bearer" in body["detail"]


async def test_no_header_is_401(client: httpx.AsyncClient) -> None:
    resp = await client.get("/me")
    body = assert_401(resp)
    assert "detail" not in body
    assert resp.headers["www-authenticate"] == 'Bearer realm="studio"'


async def test_expired_within_leeway_is_accepted(test_issuer: TestIssuer) -> None:
    verifier = make_verifier(test_issuer, leeway_seconds=30)
    assert (await verifier.verify(test_issuer.mint("u", ttl=-5))).subject == "u"
    strict = make_verifier(test_issuer, leeway_seconds=0)
    with pytest.raises(Unauthorized, match="expired"):
        await strict.verify(test_issuer.mint("u", ttl=-5))


# --- the JWKS cache --------------------------------------------------------------


async def test_rotation_accepted_after_exactly_one_refetch(test_issuer: TestIssuer) -> None:
    clock = FakeClock()
    cache = JwksCache(test_issuer.jwks_url, min_refetch_seconds=10, clock=clock)
    verifier = JwtVerifier(cache, issuer=test_issuer.issuer, audience=test_issuer.audience)
    requests_before = test_issuer.jwks_requests

    old_kid = test_issuer.kid
    await verifier.verify(test_issuer.mint("u"))
    await verifier.verify(test_issuer.mint("u"))
    assert cache.fetch_count == 1

    clock.advance(11)
    new_kid = test_issuer.rotate()
    assert new_kid != old_kid
    principal = await verifier.verify(test_issuer.mint("u", "editor"))
    assert principal.role is Role.editor
    assert cache.fetch_count == 2
    # Both keys stay usable without further fetches.
    await verifier.verify(test_issuer.mint("u", kid=old_kid))
    await verifier.verify(test_issuer.mint("u", kid=new_kid))
    assert cache.fetch_count == 2
    assert test_issuer.jwks_requests - requests_before == 2


async def test_unknown_kid_storm_refetches_at_most_once(test_issuer: TestIssuer) -> None:
    clock = FakeClock()
    cache = JwksCache(test_issuer.jwks_url, min_refetch_seconds=10, clock=clock)
    verifier = JwtVerifier(cache, issuer=test_issuer.issuer, audience=test_issuer.audience)
    await verifier.verify(test_issuer.mint("u"))
    assert cache.fetch_count == 1

    clock.advance(10)
    storm = [unknown_kid(test_issuer) for _ in range(3)] * 20
    results = await asyncio.gather(*(verifier.verify(t) for t in storm), return_exceptions=True)
    assert all(isinstance(r, Unauthorized) for r in results)
    assert cache.fetch_count == 2

    clock.advance(5)
    for t in storm[:10]:
        with pytest.raises(Unauthorized, match="unknown key"):
            await verifier.verify(t)
    assert cache.fetch_count == 2
    # Known keys keep working during the storm without a fetch.
    await verifier.verify(test_issuer.mint("u"))
    assert cache.fetch_count == 2

    clock.advance(5)
    with pytest.raises(Unauthorized):
        await verifier.verify(storm[0])
    assert cache.fetch_count == 3


async def test_keys_refetched_after_ttl(test_issuer: TestIssuer) -> None:
    clock = FakeClock()
    cache = JwksCache(test_issuer.jwks_url, ttl_seconds=60, min_refetch_seconds=10, clock=clock)
    verifier = JwtVerifier(cache, issuer=test_issuer.issuer, audience=test_issuer.audience)
    await verifier.verify(test_issuer.mint("u"))
    clock.advance(59)
    await verifier.verify(test_issuer.mint("u"))
    assert cache.fetch_count == 1
    clock.advance(1)
    await verifier.verify(test_issuer.mint("u"))
    assert cache.fetch_count == 2


async def test_jwks_unreachable_without_keys_is_503_not_401(test_issuer: TestIssuer) -> None:
    # The token may well be good: a 401 would tell the client to sign in again
    # over an outage of the issuer.
    dead = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    verifier = JwtVerifier(
        JwksCache(dead), issuer=test_issuer.issuer, audience=test_issuer.audience
    )
    with pytest.raises(ServiceUnavailable, match="cannot be fetched"):
        await verifier.verify(test_issuer.mint("u"))
    async with client_for(build_app(verifier)) as c:
        resp = await c.get("/me", headers=bearer(test_issuer.mint("u")))
    assert resp.status_code == 503
    assert resp.json()["type"] == "urn:studio:problem:unavailable"
    assert resp.headers["retry-after"] == "1"


async def test_jwks_outage_keeps_cached_keys_and_backs_off(test_issuer: TestIssuer) -> None:
    attempts: list[str] = []

    async def count(request: httpx.Request) -> None:
        attempts.append(str(request.url))

    clock = FakeClock()
    async with httpx.AsyncClient(timeout=2, event_hooks={"request": [count]}) as http:
        cache = JwksCache(
            test_issuer.jwks_url,
            ttl_seconds=60,
            min_refetch_seconds=10,
            client=http,
            clock=clock,
        )
        verifier = JwtVerifier(cache, issuer=test_issuer.issuer, audience=test_issuer.audience)
        await verifier.verify(test_issuer.mint("u"))
        assert len(attempts) == 1

        cache.url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
        clock.advance(61)
        # Stale keys are served while the endpoint is down...
        for _ in range(20):
            assert (await verifier.verify(test_issuer.mint("u"))).subject == "u"
        # ...and the dead endpoint is not hammered on every request.
        assert len(attempts) == 2
        clock.advance(10)
        await verifier.verify(test_issuer.mint("u"))
        assert len(attempts) == 3

        cache.url = test_issuer.jwks_url
        clock.advance(10)
        await verifier.verify(test_issuer.mint("u"))
        assert len(attempts) == 4
        assert cache.fetch_count == 2


async def test_jwks_skips_unusable_keys(test_issuer: TestIssuer) -> None:
    """A JWKS with an EC key, an encryption key and a broken RSA key still yields the good one."""

    good = test_issuer.jwks()["keys"][0]
    doc = {
        "keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {**good, "kid": "enc", "use": "enc"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            {k: v for k, v in good.items() if k != "kid"},
            good,
        ]
    }
    body = json.dumps(doc).encode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_json(body)

    with http_server(Handler) as base:
        cache = JwksCache(f"{base}/jwks")
        key = await cache.get(good["kid"])
        assert key is not None
        assert await cache.get("broken") is None
        assert await cache.get("enc") is None


def test_role_parse() -> None:
    assert Role.parse("admin") is Role.admin
    assert Role.parse("ADMIN") is Role.viewer
    assert Role.parse(None) is Role.viewer
    assert Role.editor > Role.viewer
