"""Every media route declares its access, and the declaration holds."""

from __future__ import annotations

import re
import uuid

import pytest

from studio_media.main import create_app

OPENAPI = create_app().openapi()
ROUTES = sorted(
    (method.upper(), path, op.get("x-access"))
    for path, item in OPENAPI["paths"].items()
    for method, op in item.items()
)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def test_every_route_declares_access():
    assert len(ROUTES) >= 9
    assert all(level is not None for _, _, level in ROUTES), ROUTES
    # Public: a public episode plays for anyone; the route itself refuses a
    # private one to an anonymous caller (test_playback).
    assert {(m, p): a for m, p, a in ROUTES}[("GET", "/api/episodes/{episode_id}/hls")] == "public"


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, a in ROUTES if a == "editor"])
async def test_admin_routes_require_editor(client, auth, method, path):
    url = concrete(path)
    r = await client.request(method, url, json={})
    assert r.status_code == 401, r.text
    r = await client.request(method, url, json={}, headers=auth.viewer)
    assert r.status_code == 403, r.text
    for role in ("editor", "admin"):
        r = await client.request(method, url, json={}, headers=auth.headers(role))
        assert r.status_code not in (401, 403), r.text
        assert r.status_code < 500, r.text
