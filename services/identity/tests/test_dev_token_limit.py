"""The development token route: absent unless development is asked for, and
limited per client address even there."""

from __future__ import annotations

import pytest

from studio_common.errors import TooManyRequests
from studio_common.testing.plugin import serve_app
from studio_identity.config import IdentitySettings
from studio_identity.dev_limit import DevTokenLimiter
from studio_identity.main import create_app


def test_without_an_environment_there_is_no_dev_token_route(tmp_path, monkeypatch):
    for name in ("STUDIO_ENVIRONMENT", "IDENTITY_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    # Production also wants the Clerk write-back; only the route is looked at here.
    settings = IdentitySettings(dev_key_path=tmp_path / "k.pem", clerk_secret_key="sk_test_x")
    app = create_app(settings)
    assert "/api/dev/token" not in app.openapi()["paths"]
    assert not settings.dev_issuer_enabled


async def test_the_dev_token_route_is_rate_limited_per_address(
    service_settings, migrated, tmp_path
):
    settings = IdentitySettings(
        **{**service_settings, "environment": "development", "run_consumers": False},
        dev_key_path=tmp_path / "k.pem",
        dev_token_rate_limit=3,
        dev_token_rate_window_seconds=60,
    )
    body = {"email": "a@b.test", "role": "admin"}
    async with serve_app(create_app(settings)) as c:
        for _ in range(3):
            assert (await c.post("/api/dev/token", json=body)).status_code == 200
        r = await c.post("/api/dev/token", json=body)
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:studio:problem:rate-limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # Rotating X-Forwarded-For from a peer that is no trusted proxy changes nothing.
        r = await c.post("/api/dev/token", json=body, headers={"X-Forwarded-For": "203.0.113.5"})
        assert r.status_code == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    service_settings, migrated, tmp_path
):
    settings = IdentitySettings(
        **{**service_settings, "environment": "development", "run_consumers": False},
        dev_key_path=tmp_path / "k.pem",
        dev_token_rate_limit=1,
        trusted_proxies="127.0.0.1",
    )
    body = {"email": "a@b.test", "role": "viewer"}
    async with serve_app(create_app(settings)) as c:
        first = {"X-Forwarded-For": "203.0.113.5"}
        assert (await c.post("/api/dev/token", json=body, headers=first)).status_code == 200
        assert (await c.post("/api/dev/token", json=body, headers=first)).status_code == 429
        other = {"X-Forwarded-For": "203.0.113.6"}
        assert (await c.post("/api/dev/token", json=body, headers=other)).status_code == 200


def test_the_limit_window_reopens():
    now = [0.0]
    limiter = DevTokenLimiter(2, 10, clock=lambda: now[0])
    limiter.hit("a")
    limiter.hit("a")
    limiter.hit("b")
    with pytest.raises(TooManyRequests) as caught:
        limiter.hit("a")
    assert caught.value.headers["Retry-After"] == "10"
    now[0] = 10.0
    limiter.hit("a")
