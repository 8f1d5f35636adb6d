"""Revocation: identity's current role, not the token's, decides (ADR 7)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import nats
import pytest

from studio_common.auth import Role
from studio_common.events import subject_for
from studio_common.roles import RoleRecord, open_bucket, role_bucket, role_key
from studio_common.testing.jetstream import envelope_of, stream_messages, wait_until
from studio_identity.roles import reconcile

from .conftest import new_subject

# Generous: the design target is about a second, on a loaded machine.
REVOCATION_BOUND = 5.0


async def bucket_record(nats_url: str, stream: str, subject: str) -> RoleRecord | None:
    nc = await nats.connect(nats_url)
    try:
        kv = await open_bucket(nc.jetstream(), role_bucket(stream))
        try:
            entry = await kv.get(role_key(subject))
        except nats.js.errors.KeyNotFoundError:
            return None
        return RoleRecord.decode(entry.value) if entry.value else None
    finally:
        await nc.close()


async def user_as(client: Any, auth: Any, role: str) -> tuple[dict[str, Any], dict[str, str]]:
    sub = new_subject()
    headers = auth.headers(role, sub=sub)
    r = await client.get("/api/me", headers=headers)
    assert r.status_code == 200, r.text
    user: dict[str, Any] = r.json()
    return user, headers


async def refused_within(client: Any, path: str, headers: dict[str, str]) -> float:
    started = time.monotonic()

    async def refused() -> bool:
        return bool((await client.get(path, headers=headers)).status_code == 403)

    await wait_until(refused, within=REVOCATION_BOUND, interval=0.05)
    return time.monotonic() - started


async def test_a_demoted_admin_loses_admin_routes_and_cannot_promote_back(client, auth):
    _, ceo_headers = await user_as(client, auth, "admin")
    demoted, demoted_headers = await user_as(client, auth, "admin")
    assert (await client.get("/api/admin/users", headers=demoted_headers)).status_code == 200

    r = await client.put(
        f"/api/admin/users/{demoted['id']}/role", json={"role": "viewer"}, headers=ceo_headers
    )
    assert r.status_code == 200, r.text
    # The same token: refused by the admin routes once the change reaches the bucket.
    await refused_within(client, "/api/admin/users", demoted_headers)

    # And refused by the role change itself at once, from the table, whatever the bucket says.
    again = await client.put(
        f"/api/admin/users/{demoted['id']}/role", json={"role": "admin"}, headers=demoted_headers
    )
    assert again.status_code == 403, again.text
    assert again.json()["type"] == "urn:studio:problem:forbidden"
    me = await client.get("/api/me", headers=demoted_headers)
    assert me.json()["role"] == "viewer"
    # A fresh token with admin in it does not help either: the bucket caps it.
    fresh = auth.headers("admin", sub=demoted["clerkId"])
    assert (await client.get("/api/admin/users", headers=fresh)).status_code == 403


async def test_the_role_change_check_reads_the_table_not_the_bucket(
    client, auth, identity_app, service_settings
):
    """A demoted admin is refused by PUT .../role even before the bucket has the change."""
    _, ceo_headers = await user_as(client, auth, "admin")
    demoted, demoted_headers = await user_as(client, auth, "admin")
    target, _ = await user_as(client, auth, "viewer")
    roles = identity_app.state.roles
    # Hold the projection still: the bucket's update must not be what refuses it.
    roles.effective = lambda principal: principal
    try:
        r = await client.put(
            f"/api/admin/users/{demoted['id']}/role", json={"role": "editor"}, headers=ceo_headers
        )
        assert r.status_code == 200
        promote = await client.put(
            f"/api/admin/users/{target['id']}/role", json={"role": "admin"}, headers=demoted_headers
        )
        assert promote.status_code == 403, promote.text
    finally:
        del roles.effective


async def test_a_promotion_needs_a_token_that_carries_it(client, auth, identity_app):
    _, ceo_headers = await user_as(client, auth, "admin")
    user, viewer_headers = await user_as(client, auth, "viewer")
    r = await client.put(
        f"/api/admin/users/{user['id']}/role", json={"role": "admin"}, headers=ceo_headers
    )
    assert r.status_code == 200
    await wait_until(lambda: identity_app.state.roles.get(user["clerkId"]), within=5)
    assert identity_app.state.roles.get(user["clerkId"]).role is Role.admin
    # The bucket only ever lowers a role: the viewer token stays a viewer's.
    assert (await client.get("/api/admin/users", headers=viewer_headers)).status_code == 403
    promoted = auth.headers("admin", sub=user["clerkId"])
    assert (await client.get("/api/admin/users", headers=promoted)).status_code == 200


async def test_the_bucket_holds_the_current_role_and_version(
    client, auth, nats_url, event_namespace, service_settings
):
    _, ceo_headers = await user_as(client, auth, "admin")
    user, _ = await user_as(client, auth, "viewer")
    assert await bucket_record(nats_url, event_namespace.stream, user["clerkId"]) is None
    for role in ("editor", "admin", "viewer"):
        r = await client.put(
            f"/api/admin/users/{user['id']}/role", json={"role": role}, headers=ceo_headers
        )
        assert r.status_code == 200

    async def settled() -> RoleRecord | None:
        record = await bucket_record(nats_url, event_namespace.stream, user["clerkId"])
        return record if record is not None and record.version == 3 else None

    record = await wait_until(settled, within=REVOCATION_BOUND)
    assert (record.role, str(record.user_id), record.deleted) == (Role.viewer, user["id"], False)
    events = await stream_messages(
        nats_url,
        event_namespace.stream,
        subject_for(event_namespace.subject_root, "identity.user.role_changed"),
    )
    assert sum(envelope_of(m)["data"]["userId"] == user["id"] for m in events) == 3


async def test_an_older_version_never_replaces_a_newer_one(nats_url, event_namespace):
    from studio_common.roles import write_role

    nc = await nats.connect(nats_url)
    try:
        kv = await open_bucket(nc.jetstream(), role_bucket(event_namespace.stream))
        sub = new_subject()
        assert await write_role(kv, sub, RoleRecord(Role.viewer, 2))
        assert not await write_role(kv, sub, RoleRecord(Role.admin, 1))
        assert not await write_role(kv, sub, RoleRecord(Role.admin, 2))
        assert await write_role(kv, sub, RoleRecord(Role.editor, 3))
        entry = await kv.get(role_key(sub))
        assert RoleRecord.decode(entry.value).role is Role.editor
    finally:
        await nc.close()


async def test_reconcile_restores_a_lost_bucket_entry(
    client, auth, identity_app, nats_url, event_namespace
):
    _, ceo_headers = await user_as(client, auth, "admin")
    user, _ = await user_as(client, auth, "admin")
    r = await client.put(
        f"/api/admin/users/{user['id']}/role", json={"role": "editor"}, headers=ceo_headers
    )
    assert r.status_code == 200
    runtime = identity_app.state.runtime
    kv = runtime.role_bucket

    async def written() -> bool:
        return await bucket_record(nats_url, event_namespace.stream, user["clerkId"]) is not None

    await wait_until(written, within=REVOCATION_BOUND)
    await kv.purge(role_key(user["clerkId"]))
    assert await bucket_record(nats_url, event_namespace.stream, user["clerkId"]) is None

    behind = await reconcile(runtime.context.role_writer, runtime.js, runtime.database)
    assert behind >= 1
    record = await bucket_record(nats_url, event_namespace.stream, user["clerkId"])
    assert record is not None
    assert (record.role, record.version) == (Role.editor, 1)
    # Up to date now: a second pass writes nothing for this user.
    await reconcile(runtime.context.role_writer, runtime.js, runtime.database)
    assert (await bucket_record(nats_url, event_namespace.stream, user["clerkId"])) == record


@pytest.mark.parametrize("raw", [b"not json", b'{"role":"root","version":1}', b"{}"])
def test_an_unreadable_record_means_viewer(raw):
    from studio_common.auth import Principal
    from studio_common.roles import RoleProjection

    projection = RoleProjection()
    projection.apply(role_key("user_x"), raw, None)
    admin = Principal(subject="user_x", role=Role.admin)
    assert projection.effective(admin).role is Role.viewer


# --- identity.user.created: the id other services accept for a user -------------------------


async def created_events(nats_url: str, ns: Any, clerk_id: str) -> list[dict[str, Any]]:
    msgs = await stream_messages(
        nats_url, ns.stream, subject_for(ns.subject_root, "identity.user.created")
    )
    return [envelope_of(m)["data"] for m in msgs if envelope_of(m)["data"]["clerkId"] == clerk_id]


async def test_a_new_user_is_announced_once_with_its_id(client, auth, nats_url, event_namespace):
    user, headers = await user_as(client, auth, "viewer")
    assert (await client.get("/api/me", headers=headers)).status_code == 200

    async def announced() -> list[dict[str, Any]]:
        return await created_events(nats_url, event_namespace, user["clerkId"])

    events = await wait_until(announced, within=REVOCATION_BOUND)
    assert events == [{"userId": user["id"], "clerkId": user["clerkId"]}]


async def test_a_user_from_a_clerk_webhook_is_announced(client, nats_url, event_namespace):
    from .conftest import clerk_event, clerk_user, signed_webhook

    sub = new_subject()
    body, headers = signed_webhook(clerk_event("user.created", clerk_user(sub)))
    assert (await client.post("/api/webhooks/clerk", content=body, headers=headers)).is_success

    async def announced() -> list[dict[str, Any]]:
        return await created_events(nats_url, event_namespace, sub)

    [event] = await wait_until(announced, within=REVOCATION_BOUND)
    assert event["clerkId"] == sub


async def test_migration_0003_announces_the_users_held_before(pg_admin_url):
    """Users created before identity.user.created existed get one each, in the outbox."""
    import asyncpg

    from studio_common.events import Envelope, UserCreatedV1
    from studio_common.migrations import upgrade

    from .conftest import SERVICE_DIR

    name = f"identity_m3_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        upgrade(SERVICE_DIR, url.replace("postgresql://", "postgresql+asyncpg://"), "0002")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO identity.users (clerk_id, role, role_changed_at) VALUES "
                "('user_old_a', 'viewer', NULL), ('user_old_b', 'editor', now())"
            )
            await conn.execute(
                "INSERT INTO identity.users (clerk_id, deleted_at) VALUES ('user_gone', now())"
            )
            upgrade(SERVICE_DIR, url.replace("postgresql://", "postgresql+asyncpg://"))
            rows = await conn.fetch("SELECT id, envelope::text AS e FROM identity.outbox")
            users = {
                r["clerk_id"]: r
                for r in await conn.fetch("SELECT id, clerk_id, role_version FROM identity.users")
            }
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    envelopes = [Envelope.model_validate_json(r["e"]) for r in rows]
    assert [r["id"] for r in rows] == [e.id for e in envelopes]
    payloads = {p.clerk_id: p for e in envelopes if isinstance(p := e.payload(), UserCreatedV1)}
    assert set(payloads) == {"user_old_a", "user_old_b"}
    assert payloads["user_old_b"].user_id == users["user_old_b"]["id"]
    # Changed or deleted before: version 1, so the reconciliation publishes them.
    assert {k: v["role_version"] for k, v in users.items()} == {
        "user_old_a": 0,
        "user_old_b": 1,
        "user_gone": 1,
    }
