"""identity as the development issuer: JWKS, POST /api/dev/token, the CLI, key rotation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest
import yaml

from studio_common.auth import JwksCache, JwtVerifier, Principal, Role
from studio_common.errors import Unauthorized
from studio_common.settings import DEV_JWT_AUDIENCE, ServiceSettings
from studio_identity.config import IdentitySettings
from studio_identity.issuer import dev_subject, issue_dev_token
from studio_identity.keys import DevKeyStore
from studio_identity.main import create_app

from .conftest import AUDIENCE, FRONTEND, ROLE_CLAIM

ROOT = Path(__file__).resolve().parents[3]


def verifier_for(dev_server, **kw) -> JwtVerifier:
    return JwtVerifier(
        JwksCache(dev_server.jwks_url, min_refetch_seconds=0),
        issuer=dev_server.settings.jwt_issuer,
        audience=AUDIENCE,
        authorized_parties=[FRONTEND],
        role_claim=ROLE_CLAIM,
        **kw,
    )


def cli_env(dev_server) -> dict[str, str]:
    s = dev_server.settings
    return {
        **os.environ,
        "IDENTITY_DEV_KEY_PATH": str(s.dev_key_path),
        "STUDIO_JWT_ISSUER": s.jwt_issuer,
        "STUDIO_JWT_AUDIENCE": AUDIENCE,
        "STUDIO_JWT_AUTHORIZED_PARTIES": f'["{FRONTEND}"]',
        "STUDIO_JWT_ROLE_CLAIM": ROLE_CLAIM,
        "STUDIO_ENVIRONMENT": "development",
    }


def run_cli(dev_server, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "studio_identity", *args],
        env=cli_env(dev_server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# --- JWKS and the token endpoint ----------------------------------------------------------------


async def test_jwks_serves_the_current_public_key(dev_server):
    async with httpx.AsyncClient() as c:
        r = await c.get(dev_server.jwks_url)
    assert r.status_code == 200
    keys = r.json()["keys"]
    current = dev_server.keys.load_or_create()
    assert current.kid in [k["kid"] for k in keys]
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["use"] == "sig"
        assert key["alg"] == "RS256"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)  # public parts only


async def test_dev_token_is_accepted_by_the_shared_verifier(dev_server):
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        r = await c.post("/api/dev/token", json={"email": "Ed@Studio.test", "role": "editor"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"token", "expiresAt", "sub"}
        principal = await verifier_for(dev_server).verify(body["token"])
        assert principal.role is Role.editor
        assert principal.email == "Ed@Studio.test"
        assert principal.subject == body["sub"] == dev_subject("ed@studio.test")
        claims = principal.claims
        assert claims["iss"] == dev_server.settings.jwt_issuer
        assert claims["aud"] == AUDIENCE
        assert claims["azp"] == FRONTEND
        # Written at the configured claim path, as Clerk's public metadata.
        assert claims["public_metadata"] == {"role": "editor"}
        assert "role" not in claims
        assert claims["exp"] - claims["iat"] == 3600

        me = await c.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
        assert me.status_code == 200, me.text
        assert me.json()["role"] == "editor"
        assert me.json()["clerkId"] == body["sub"]


async def test_dev_token_with_sub_and_ttl(dev_server):
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        r = await c.post(
            "/api/dev/token",
            json={"email": "a@b.test", "role": "admin", "sub": "user_fixed_1", "ttlSeconds": 120},
        )
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "user_fixed_1"
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    "body",
    [
        {"role": "admin"},
        {"email": "a@b.test"},
        {"email": "not-an-email", "role": "admin"},
        {"email": "a@b.test", "role": "root"},
        {"email": "a@b.test", "role": "admin", "ttlSeconds": 10},
        {"email": "a@b.test", "role": "admin", "ttlSeconds": 86_401},
        {"email": "a@b.test", "role": "admin", "sub": "has spaces"},
        {"email": "a@b.test", "role": "admin", "extra": True},
    ],
)
async def test_dev_token_validation(dev_server, body):
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        r = await c.post("/api/dev/token", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:studio:problem:validation"


@pytest.mark.parametrize("environment", ["test", "production"])
def test_dev_token_route_exists_only_in_development(environment, tmp_path):
    settings = IdentitySettings(
        environment=environment, dev_key_path=tmp_path / "k.pem", clerk_secret_key="sk_test_x"
    )
    app = create_app(settings)
    assert "/api/dev/token" not in app.openapi()["paths"]
    assert all(getattr(r, "path", None) != "/api/dev/token" for r in app.routes)
    assert "/.well-known/jwks.json" in app.openapi()["paths"]
    dev = create_app(IdentitySettings(environment="development", dev_key_path=tmp_path / "k.pem"))
    assert "/api/dev/token" in dev.openapi()["paths"]


async def test_dev_token_route_is_404_in_the_test_environment(client):
    r = await client.post("/api/dev/token", json={"email": "a@b.test", "role": "admin"})
    assert r.status_code == 404


def test_production_has_no_dev_keys(tmp_path):
    app = create_app(
        IdentitySettings(
            environment="production", dev_key_path=tmp_path / "k.pem", clerk_secret_key="sk_test_x"
        )
    )
    assert "/api/dev/token" not in {getattr(r, "path", None) for r in app.routes}
    assert not (tmp_path / "k.pem").exists()


def test_production_does_not_start_without_the_clerk_write_back(tmp_path):
    # Without it Clerk's tokens never learn a role change made here.
    settings = IdentitySettings(environment="production", dev_key_path=tmp_path / "k.pem")
    with pytest.raises(ValueError, match="IDENTITY_CLERK_SECRET_KEY"):
        create_app(settings)
    for environment in ("development", "test"):
        create_app(IdentitySettings(environment=environment, dev_key_path=tmp_path / "k.pem"))


# --- zero configuration under `make up` ---------------------------------------------------------


def test_defaults_line_up_for_every_service():
    shared = ServiceSettings()
    identity = IdentitySettings()
    assert shared.jwt_issuer == identity.jwt_issuer == "http://127.0.0.1:8102"
    assert shared.jwks_url == f"{shared.jwt_issuer}/.well-known/jwks.json"
    # Production unless asked: `make up` asks for development, a bare process does not.
    assert shared.environment == identity.environment == "production"
    assert not identity.dev_token_route_enabled
    routes = yaml.safe_load((ROOT / "deploy/helm/studio/routes.yaml").read_text())
    assert routes["services"]["identity"]["port"] == 8102
    owned = {r["path"]: r["service"] for r in routes["routes"]}
    assert owned["/.well-known/jwks.json"] == "identity"
    assert owned["/api/dev/token"] == "identity"

    from studio_devstack.settings import DevSettings

    dev = DevSettings.from_env({}, ROOT)
    assert (dev.jwt_issuer, dev.jwks_url) == (shared.jwt_issuer, shared.jwks_url)
    assert dev.service_env()["STUDIO_ENVIRONMENT"] == "development"


async def verify_locally(settings: ServiceSettings, keys: DevKeyStore, token: str) -> Principal:
    """Verify as a service configured by ``settings`` would, its JWKS URL answering from ``keys``."""
    transport = httpx.MockTransport(
        lambda req: (
            httpx.Response(200, json=keys.jwks())
            if str(req.url) == settings.jwks_url
            else httpx.Response(404)
        )
    )
    async with httpx.AsyncClient(transport=transport) as http:
        verifier = JwtVerifier(
            JwksCache(settings.jwks_url, client=http),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_expected_audience,
            authorized_parties=settings.jwt_authorized_parties,
            role_claim=settings.jwt_role_claim,
        )
        return await verifier.verify(token)


async def test_a_token_from_default_settings_verifies_with_default_settings(tmp_path):
    identity = IdentitySettings(environment="development", dev_key_path=tmp_path / "jwt-key.pem")
    keys = DevKeyStore(identity.dev_key_path)
    issued = issue_dev_token(identity, keys, role="admin", email="root@studio.local")
    principal = await verify_locally(ServiceSettings(environment="development"), keys, issued.token)
    assert principal.role is Role.admin
    assert principal.subject == dev_subject("root@studio.local")
    # Development tokens carry an audience, and the services require it.
    assert principal.claims["aud"] == DEV_JWT_AUDIENCE
    unaudienced = keys.sign({k: v for k, v in principal.claims.items() if k != "aud"})
    with pytest.raises(Unauthorized, match="audience"):
        await verify_locally(ServiceSettings(environment="development"), keys, unaudienced)
    other = keys.sign({**principal.claims, "aud": "another-app"})
    with pytest.raises(Unauthorized, match="audience"):
        await verify_locally(ServiceSettings(environment="development"), keys, other)


@pytest.mark.parametrize("claim_path", ["role", "public_metadata.role", "metadata.studio.role"])
async def test_the_role_is_written_where_it_is_read(tmp_path, claim_path):
    settings = IdentitySettings(
        dev_key_path=tmp_path / "k.pem",
        jwt_role_claim=claim_path,
        jwt_audience="aud-1",
        jwt_authorized_parties=["https://app.test", "https://other.test"],
    )
    keys = DevKeyStore(settings.dev_key_path)
    token = issue_dev_token(settings, keys, role="editor", email="e@x.test").token
    assert (await verify_locally(settings, keys, token)).role is Role.editor


def test_a_role_claim_path_over_a_registered_claim_is_refused(tmp_path):
    settings = IdentitySettings(dev_key_path=tmp_path / "k.pem", jwt_role_claim="sub")
    with pytest.raises(ValueError, match="registered claim"):
        issue_dev_token(settings, DevKeyStore(settings.dev_key_path), role="admin", email="a@b.c")


# --- the CLI ------------------------------------------------------------------------------------


async def test_cli_token_is_accepted_by_the_running_server(dev_server):
    token = run_cli(dev_server, "token", "--role", "admin", "--email", "ops@studio.test")
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        r = await c.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        me = await c.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["clerkId"] == dev_subject("ops@studio.test")
    assert me.json()["email"] == "ops@studio.test"


def test_cli_token_refuses_production(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "studio_identity", "token", "--role", "admin"],
        env={
            **os.environ,
            "IDENTITY_ENVIRONMENT": "production",
            "IDENTITY_DEV_KEY_PATH": str(tmp_path / "k.pem"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert not (tmp_path / "k.pem").exists()


# --- rotation against the real JWKS endpoint ----------------------------------------------------


async def test_rotation_with_grace_period(dev_server):
    old_token = await dev_server.token("admin")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    verifier = verifier_for(dev_server)
    assert (await verifier.verify(old_token)).role is Role.admin
    fetches = verifier.jwks.fetch_count

    new_kid = run_cli(dev_server, "rotate-key", "--grace", "1.5")
    assert new_kid != old_kid

    # The running server signs with the new key at once ...
    new_token = await dev_server.token("admin")
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    # ... a verifier that never saw it refetches exactly once ...
    assert (await verifier.verify(new_token)).role is Role.admin
    assert verifier.jwks.fetch_count == fetches + 1
    # ... and tokens signed before the rotation stay valid during the grace period.
    assert (await verifier.verify(old_token)).role is Role.admin
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        for token in (old_token, new_token):
            r = await c.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
        kids = {k["kid"] for k in (await c.get("/.well-known/jwks.json")).json()["keys"]}
        assert kids == {old_kid, new_kid}

        await asyncio.sleep(1.6)
        kids = {k["kid"] for k in (await c.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {new_kid}
    fresh = verifier_for(dev_server)
    assert (await fresh.verify(new_token)).role is Role.admin
    with pytest.raises(Unauthorized, match="unknown key"):
        await fresh.verify(old_token)
