"""Every admin route: anonymous → 401, viewer → 403, editor and admin get past auth."""

from __future__ import annotations

import re
import uuid

import pytest

from studio_catalog.main import create_app

# From the OpenAPI document: it lists every route however routers are nested.
ADMIN_ROUTES = sorted(
    (method.upper(), path)
    for path, item in create_app().openapi()["paths"].items()
    if path.startswith("/api/admin")
    for method in item
)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def test_admin_routes_are_found():
    # Guards the parametrisation below against silently testing nothing.
    assert len(ADMIN_ROUTES) >= 9
    assert ("POST", "/api/admin/episodes") in ADMIN_ROUTES


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_route_requires_editor(client, auth, test_issuer, method, path):
    url = concrete(path)
    r = await client.request(method, url, json={})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["type"] == "urn:studio:problem:unauthorized"

    r = await client.request(method, url, json={}, headers=auth.viewer)
    assert r.status_code == 403, r.text
    assert r.json()["type"] == "urn:studio:problem:forbidden"

    # No role claim at all means viewer, never more.
    no_role = {"Authorization": f"Bearer {test_issuer.mint(role=None)}"}
    assert (await client.request(method, url, json={}, headers=no_role)).status_code == 403
    bogus = {"Authorization": f"Bearer {test_issuer.mint(role='superuser')}"}
    assert (await client.request(method, url, json={}, headers=bogus)).status_code == 403

    for headers in (auth.editor, auth.admin):
        r = await client.request(method, url, json={}, headers=headers)
        # Past auth: the request now fails only on its own merits (404/422) or succeeds.
        assert r.status_code not in (401, 403), r.text
        assert r.status_code < 500, r.text


async def test_editor_and_admin_can_both_write(client, auth):
    for headers in (auth.editor, auth.admin):
        r = await client.post(
            "/api/admin/titles",
            json={"slug": f"s-{uuid.uuid4().hex[:6]}", "name": "n", "type": "series"},
            headers=headers,
        )
        assert r.status_code == 201, r.text


async def test_public_reads_need_no_token(client):
    assert (await client.get("/api/titles")).status_code == 200


async def test_a_bad_token_on_a_public_route_is_still_rejected_on_admin(client):
    r = await client.post("/api/admin/titles", json={}, headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401
