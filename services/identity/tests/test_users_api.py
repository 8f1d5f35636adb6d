"""GET /api/me and user administration against real Postgres and NATS."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from studio_common.auth import Principal, Role
from studio_common.db import Database
from studio_common.events import subject_for
from studio_common.testing.jetstream import (
    envelope_of,
    published_once,
    stream_messages,
    wait_until,
)
from studio_identity.service import IdentityService, LastAdmin

from .conftest import CLERK_SECRET_KEY, create_user, new_subject

PROBLEM = "application/problem+json"


async def role_events(nats_url, ns, user_id: str) -> list[Any]:
    msgs = await stream_messages(
        nats_url, ns.stream, subject_for(ns.subject_root, "identity.user.role_changed")
    )
    return [m for m in msgs if envelope_of(m)["data"]["userId"] == user_id]


# --- /api/me --------------------------------------------------------------------------------


async def test_me_creates_the_user_on_first_sight(client, auth):
    sub = new_subject()
    headers = auth.headers("editor", sub=sub, email="Mika@Example.com")
    first = await client.get("/api/me", headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["clerkId"] == sub
    assert body["email"] == "Mika@Example.com"
    assert body["role"] == "editor"
    assert set(body) == {"id", "clerkId", "email", "role", "createdAt", "updatedAt"}
    again = await client.get("/api/me", headers=auth.headers("editor", sub=sub))
    assert again.json()["id"] == body["id"]


async def test_me_first_sight_is_race_safe(client, auth, engine):
    sub = new_subject()
    headers = auth.headers("viewer", sub=sub, email="race@example.com")
    responses = await asyncio.gather(*(client.get("/api/me", headers=headers) for _ in range(12)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM identity.users WHERE clerk_id = :s"), {"s": sub}
        )
    assert count == 1


async def test_me_fills_a_missing_email_later(client, auth):
    sub = new_subject()
    assert (await client.get("/api/me", headers=auth.headers(sub=sub))).json()["email"] is None
    r = await client.get("/api/me", headers=auth.headers(sub=sub, email="late@example.com"))
    assert r.json()["email"] == "late@example.com"


async def test_me_needs_a_token(client):
    r = await client.get("/api/me")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "urn:studio:problem:unauthorized"


# --- GET /api/admin/users --------------------------------------------------------------------


async def test_list_users_pages_and_filters(client, auth):
    made = [await create_user(client, auth, "viewer", f"fan{i}@anime.test") for i in range(5)]
    editor = await create_user(client, auth, "editor", "Editor_100%@Studio.test")

    r = await client.get("/api/admin/users", params={"pageSize": 2}, headers=auth.admin)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 6
    assert page["totalPages"] == 3
    assert [u["id"] for u in page["items"]] == [made[0]["id"], made[1]["id"]]
    last = await client.get(
        "/api/admin/users", params={"pageSize": 2, "page": 3}, headers=auth.admin
    )
    assert [u["id"] for u in last.json()["items"]] == [made[4]["id"], editor["id"]]

    by_role = await client.get("/api/admin/users", params={"role": "editor"}, headers=auth.admin)
    assert [u["id"] for u in by_role.json()["items"]] == [editor["id"]]

    # Substring, any case; % and _ are literal characters, not wildcards.
    by_email = await client.get(
        "/api/admin/users", params={"email": "r_100%@st"}, headers=auth.admin
    )
    assert [u["id"] for u in by_email.json()["items"]] == [editor["id"]]
    wildcard = await client.get("/api/admin/users", params={"email": "%"}, headers=auth.admin)
    assert [u["id"] for u in wildcard.json()["items"]] == [editor["id"]]
    fans = await client.get("/api/admin/users", params={"email": "ANIME.TEST"}, headers=auth.admin)
    assert fans.json()["total"] == 5


@pytest.mark.parametrize(
    "params", [{"pageSize": 101}, {"pageSize": 0}, {"page": 0}, {"role": "owner"}]
)
async def test_list_users_bounds(client, auth, params):
    r = await client.get("/api/admin/users", params=params, headers=auth.admin)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:studio:problem:validation"


async def test_deleted_users_are_not_listed(client, auth, engine):
    user = await create_user(client, auth)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE identity.users SET deleted_at = now() WHERE id = :id"), {"id": user["id"]}
        )
    r = await client.get("/api/admin/users", headers=auth.admin)
    assert r.json()["total"] == 0


# --- PUT /api/admin/users/{id}/role ------------------------------------------------------------


async def test_change_role_emits_exactly_one_event_and_writes_back_to_clerk(
    client, auth, nats_url, event_namespace, fake_clerk
):
    user = await create_user(client, auth, "viewer")
    r = await client.put(
        f"/api/admin/users/{user['id']}/role", json={"role": "editor"}, headers=auth.admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "editor"
    me = await client.get("/api/me", headers=auth.headers("viewer", sub=user["clerkId"]))
    assert me.json()["role"] == "editor"

    env = await published_once(lambda: role_events(nats_url, event_namespace, user["id"]))
    assert env["type"] == "identity.user.role_changed"
    assert env["data"] == {
        "userId": user["id"],
        "clerkId": user["clerkId"],
        "oldRole": "viewer",
        "newRole": "editor",
    }

    patches = await wait_until(lambda: fake_clerk.patches_for(user["clerkId"]))
    assert patches[0]["json"] == {"public_metadata": {"role": "editor"}}
    assert patches[0]["headers"]["authorization"] == f"Bearer {CLERK_SECRET_KEY}"


async def test_clerk_write_back_is_retried(client, auth, fake_clerk):
    user = await create_user(client, auth, "viewer")
    fake_clerk.fail_next(user["clerkId"], 503)
    r = await client.put(
        f"/api/admin/users/{user['id']}/role", json={"role": "admin"}, headers=auth.admin
    )
    assert r.status_code == 200
    patches = await wait_until(
        lambda: [p for p in fake_clerk.patches_for(user["clerkId"]) if p["status"] == 200],
        within=15,
    )
    assert patches[0]["json"] == {"public_metadata": {"role": "admin"}}
    assert [p["status"] for p in fake_clerk.patches_for(user["clerkId"])] == [503, 200]


async def test_same_role_changes_nothing(client, auth, nats_url, event_namespace):
    user = await create_user(client, auth, "editor")
    r = await client.put(
        f"/api/admin/users/{user['id']}/role", json={"role": "editor"}, headers=auth.admin
    )
    assert r.status_code == 200
    await asyncio.sleep(0.6)
    assert await role_events(nats_url, event_namespace, user["id"]) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [({"role": "superuser"}, 422), ({}, 422), ({"role": "admin", "extra": 1}, 422)],
)
async def test_change_role_validation(client, auth, body, status):
    user = await create_user(client, auth)
    r = await client.put(f"/api/admin/users/{user['id']}/role", json=body, headers=auth.admin)
    assert r.status_code == status, r.text


async def test_change_role_of_unknown_user_is_404(client, auth):
    r = await client.put(
        f"/api/admin/users/{uuid.uuid4()}/role", json={"role": "editor"}, headers=auth.admin
    )
    assert r.status_code == 404
    assert r.json()["type"] == "urn:studio:problem:not-found"


async def test_viewer_and_editor_cannot_administer(client, auth):
    user = await create_user(client, auth)
    for headers in (auth.viewer, auth.editor):
        r = await client.put(
            f"/api/admin/users/{user['id']}/role", json={"role": "admin"}, headers=headers
        )
        assert r.status_code == 403
        assert (await client.get("/api/admin/users", headers=headers)).status_code == 403


async def test_the_last_admin_cannot_be_demoted(client, auth):
    admin = await create_user(client, auth, "admin")
    r = await client.put(
        f"/api/admin/users/{admin['id']}/role", json={"role": "viewer"}, headers=auth.admin
    )
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "urn:studio:problem:last-admin"

    other = await create_user(client, auth, "viewer")
    promote = await client.put(
        f"/api/admin/users/{other['id']}/role", json={"role": "admin"}, headers=auth.admin
    )
    assert promote.status_code == 200
    demote = await client.put(
        f"/api/admin/users/{admin['id']}/role", json={"role": "editor"}, headers=auth.admin
    )
    assert demote.status_code == 200, demote.text
    again = await client.put(
        f"/api/admin/users/{other['id']}/role", json={"role": "viewer"}, headers=auth.admin
    )
    assert again.status_code == 409


async def test_two_admins_demoting_each_other_leave_one(client, auth):
    a = await create_user(client, auth, "admin")
    b = await create_user(client, auth, "admin")
    results = await asyncio.gather(
        client.put(f"/api/admin/users/{a['id']}/role", json={"role": "viewer"}, headers=auth.admin),
        client.put(f"/api/admin/users/{b['id']}/role", json={"role": "viewer"}, headers=auth.admin),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    admins = await client.get("/api/admin/users", params={"role": "admin"}, headers=auth.admin)
    assert admins.json()["total"] == 1


async def test_demotion_waits_for_the_admin_row_locks(identity_settings, client, auth):
    """The second demotion blocks on the first one's locks, then sees one admin left."""
    a = await create_user(client, auth, "admin")
    b = await create_user(client, auth, "admin")
    actor = Principal(subject="admin", role=Role.admin)
    db = Database.connect(identity_settings.database_url, pool_size=2)
    try:
        async with db.transaction() as first:
            await IdentityService(first).change_role(uuid.UUID(a["id"]), "viewer", actor=actor)

            async def second() -> None:
                async with db.transaction() as session:
                    await IdentityService(session).change_role(
                        uuid.UUID(b["id"]), "viewer", actor=actor
                    )

            task = asyncio.create_task(second())
            await asyncio.sleep(0.5)
            assert not task.done()  # waiting on the admin rows `first` holds
        with pytest.raises(LastAdmin):
            await task
    finally:
        await db.dispose()
