"""Every playback route declares its access, and the declaration holds."""

from __future__ import annotations

import re
import uuid

import pytest

from studio_playback.main import create_app

ROUTES = sorted(
    (method.upper(), path, op.get("x-access"))
    for path, item in create_app().openapi()["paths"].items()
    for method, op in item.items()
)


def concrete(path: str, user_id: str = "someone") -> str:
    path = path.replace("{user_id}", user_id)
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def test_every_route_declares_access():
    assert len(ROUTES) == 5
    assert {(m, p): a for m, p, a in ROUTES} == {
        ("POST", "/api/favorites"): "user",
        ("GET", "/api/users/{user_id}/watchlist"): "self-or-admin",
        ("POST", "/api/playback"): "user",
        ("GET", "/api/playback/{episode_id}"): "user",
        ("GET", "/api/me/continue-watching"): "user",
    }


@pytest.mark.parametrize(("method", "path", "level"), ROUTES)
async def test_anonymous_and_bad_tokens_are_401(client, method, path, level):
    url = concrete(path)
    for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic x"}):
        r = await client.request(method, url, json={}, headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["type"] == "urn:studio:problem:unauthorized"


@pytest.mark.parametrize(("method", "path", "level"), ROUTES)
async def test_signed_in_users_get_past_auth(client, users, method, path, level):
    user = users()
    r = await client.request(method, concrete(path, user.id), json={}, headers=user.headers)
    assert r.status_code not in (401, 403), r.text
    assert r.status_code < 500, r.text


async def test_an_expired_token_is_rejected(client, test_issuer):
    token = test_issuer.mint(ttl=-60)  # expired beyond the leeway
    r = await client.get("/api/me/continue-watching", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
