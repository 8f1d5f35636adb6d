"""POST /api/webhooks/clerk with real Svix-format signatures."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from studio_common.events import subject_for
from studio_common.testing.jetstream import envelope_of, stream_messages, wait_until

from .conftest import (
    WEBHOOK_SECRET,
    clerk_event,
    clerk_user,
    new_subject,
    signed_webhook,
    svix_signature,
)

URL = "/api/webhooks/clerk"
BAD_SIGNATURE = "urn:studio:problem:invalid-webhook-signature"


async def post(client: httpx.AsyncClient, event: dict[str, Any], **kw: Any) -> httpx.Response:
    body, headers = signed_webhook(event, **kw)
    return await client.post(URL, content=body, headers=headers)


async def user_row(engine, clerk_id: str):
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT * FROM identity.users WHERE clerk_id = :c"), {"c": clerk_id}
            )
        ).first()


async def events_for(nats_url, ns, event_type: str, clerk_id: str) -> list[Any]:
    msgs = await stream_messages(nats_url, ns.stream, subject_for(ns.subject_root, event_type))
    return [m for m in msgs if envelope_of(m)["data"]["clerkId"] == clerk_id]


# --- signatures ---------------------------------------------------------------------------------


async def test_user_created_is_applied(client, engine):
    sub = new_subject()
    r = await post(
        client, clerk_event("user.created", clerk_user(sub, email="new@x.test", role="editor"))
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "processed"}
    row = await user_row(engine, sub)
    assert (row.email, row.role, row.deleted_at) == ("new@x.test", "editor", None)


async def test_replayed_svix_id_is_ignored(client, engine):
    sub = new_subject()
    event = clerk_event("user.created", clerk_user(sub, email="first@x.test"))
    body, headers = signed_webhook(event)
    assert (await client.post(URL, content=body, headers=headers)).json()["status"] == "processed"
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE identity.users SET email = 'changed@x.test' WHERE clerk_id = :c"),
            {"c": sub},
        )
    again = await client.post(URL, content=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert (await user_row(engine, sub)).email == "changed@x.test"


async def test_concurrent_deliveries_of_one_message_apply_once(client, engine):
    sub = new_subject()
    body, headers = signed_webhook(clerk_event("user.created", clerk_user(sub)))
    results = await asyncio.gather(
        *(client.post(URL, content=body, headers=headers) for _ in range(5))
    )
    assert sorted(r.json()["status"] for r in results) == ["duplicate"] * 4 + ["processed"]


def _tamper_body(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"someone@example.com", b"attacker@example.com"), headers


def _other_secret(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    other = "whsec_" + base64.b64encode(b"another-secret-of-enough-length!").decode()
    ts = int(headers["svix-timestamp"])
    return body, {**headers, "svix-signature": svix_signature(other, headers["svix-id"], ts, body)}


def _shifted(seconds: int):
    def shift(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        ts = int(time.time()) + seconds
        sig = svix_signature(WEBHOOK_SECRET, headers["svix-id"], ts, body)
        return body, {**headers, "svix-timestamp": str(ts), "svix-signature": sig}

    return shift


def _header(name: str, value: str | None):
    def change(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        out = {k: v for k, v in headers.items() if k != name}
        if value is not None:
            out[name] = value
        return body, out

    return change


def _other_id(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    # The id is part of what is signed: a signature cannot be moved to another message.
    return body, {**headers, "svix-id": headers["svix-id"] + "x"}


FORGERIES = {
    "tampered-body": _tamper_body,
    "other-secret": _other_secret,
    "other-svix-id": _other_id,
    "six-minutes-old": _shifted(-360),
    "six-minutes-ahead": _shifted(360),
    "no-svix-id": _header("svix-id", None),
    "no-timestamp": _header("svix-timestamp", None),
    "no-signature": _header("svix-signature", None),
    "timestamp-not-a-number": _header("svix-timestamp", "yesterday"),
    "signature-garbage": _header("svix-signature", "garbage"),
    "signature-bad-base64": _header("svix-signature", "v1,@@@"),
    "signature-unknown-version": _header("svix-signature", "v2,AAAA"),
}


@pytest.mark.parametrize("kind", sorted(FORGERIES))
async def test_forged_or_stale_webhooks_are_rejected(client, engine, kind):
    sub = new_subject()
    body, headers = signed_webhook(clerk_event("user.created", clerk_user(sub)))
    body, headers = FORGERIES[kind](body, headers)
    r = await client.post(URL, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == BAD_SIGNATURE
    assert await user_row(engine, sub) is None


async def test_within_the_tolerance_window_is_accepted(client):
    body, headers = signed_webhook(clerk_event("user.created", clerk_user(new_subject())))
    body, headers = _shifted(-240)(body, headers)
    assert (await client.post(URL, content=body, headers=headers)).status_code == 200


async def test_one_valid_signature_among_several_is_enough(client):
    """Svix lists several signatures while the endpoint's secret is rotated."""
    body, headers = signed_webhook(clerk_event("user.created", clerk_user(new_subject())))
    _, stale = _other_secret(body, headers)
    headers = {
        **headers,
        "svix-signature": f"{stale['svix-signature']} {headers['svix-signature']}",
    }
    assert (await client.post(URL, content=body, headers=headers)).json()["status"] == "processed"


async def test_signed_body_that_is_not_an_event_is_400(client):
    r = await post(client, {"hello": "world"})
    assert r.status_code == 400
    assert r.json()["type"] == "urn:studio:problem:bad-request"


async def test_signed_event_with_an_unusable_user_is_422(client):
    r = await post(client, clerk_event("user.created", {"email_addresses": []}))
    assert r.status_code == 422
    assert r.json()["errors"][0]["pointer"] == "data.id"


async def test_other_event_types_are_acknowledged_and_ignored(client):
    r = await post(client, clerk_event("session.created", {"id": "sess_1"}))
    assert r.json() == {"status": "ignored"}


# --- user.updated ------------------------------------------------------------------------------


async def test_user_updated_changes_email_and_role_with_one_event(
    client, engine, nats_url, event_namespace
):
    sub = new_subject()
    t0 = int(time.time() * 1000) - 10_000
    await post(client, clerk_event("user.created", clerk_user(sub, updated_at_ms=t0)))
    r = await post(
        client,
        clerk_event(
            "user.updated",
            clerk_user(sub, email="renamed@x.test", role="admin", updated_at_ms=t0 + 1),
        ),
    )
    assert r.json() == {"status": "processed"}
    row = await user_row(engine, sub)
    assert (row.email, row.role) == ("renamed@x.test", "admin")

    msgs = await wait_until(
        lambda: events_for(nats_url, event_namespace, "identity.user.role_changed", sub)
    )
    await asyncio.sleep(0.8)
    msgs = await events_for(nats_url, event_namespace, "identity.user.role_changed", sub)
    assert len(msgs) == 1
    data = envelope_of(msgs[0])["data"]
    assert (data["oldRole"], data["newRole"], data["userId"]) == ("viewer", "admin", str(row.id))


async def test_an_older_update_arriving_late_is_ignored(client, engine):
    sub = new_subject()
    t0 = int(time.time() * 1000) - 10_000
    await post(client, clerk_event("user.created", clerk_user(sub, updated_at_ms=t0)))
    await post(
        client,
        clerk_event(
            "user.updated", clerk_user(sub, email="b@x.test", role="editor", updated_at_ms=t0 + 200)
        ),
    )
    await post(
        client,
        clerk_event(
            "user.updated", clerk_user(sub, email="a@x.test", role="admin", updated_at_ms=t0 + 100)
        ),
    )
    row = await user_row(engine, sub)
    assert (row.email, row.role) == ("b@x.test", "editor")


async def test_a_role_set_here_is_not_overwritten_by_an_older_clerk_update(client, auth, engine):
    sub = new_subject()
    before = int(time.time() * 1000) - 5_000
    await post(client, clerk_event("user.created", clerk_user(sub, updated_at_ms=before - 1)))
    user_id = (await user_row(engine, sub)).id
    r = await client.put(
        f"/api/admin/users/{user_id}/role", json={"role": "editor"}, headers=auth.admin
    )
    assert r.status_code == 200
    # Clerk's copy from before the change (say, a profile edit) arrives afterwards.
    await post(
        client, clerk_event("user.updated", clerk_user(sub, role="viewer", updated_at_ms=before))
    )
    assert (await user_row(engine, sub)).role == "editor"
    # A change made in Clerk after ours wins.
    later = int(time.time() * 1000) + 1_000
    await post(
        client, clerk_event("user.updated", clerk_user(sub, role="admin", updated_at_ms=later))
    )
    assert (await user_row(engine, sub)).role == "admin"


async def test_updated_for_an_unknown_user_creates_it(client, engine):
    sub = new_subject()
    r = await post(client, clerk_event("user.updated", clerk_user(sub, role="editor")))
    assert r.json()["status"] == "processed"
    assert (await user_row(engine, sub)).role == "editor"


# --- user.deleted ---------------------------------------------------------------------------------


async def test_user_deleted_tombstones_and_emits_once(
    client, auth, engine, nats_url, event_namespace
):
    sub = new_subject()
    me = await client.get("/api/me", headers=auth.headers(sub=sub, email="bye@x.test"))
    user_id = me.json()["id"]
    deleted = clerk_event("user.deleted", {"id": sub, "object": "user", "deleted": True})
    assert (await post(client, deleted)).json() == {"status": "processed"}
    # Clerk retrying with a new message id changes nothing and emits nothing.
    assert (await post(client, deleted)).json() == {"status": "processed"}

    row = await user_row(engine, sub)
    assert row.deleted_at is not None
    assert row.email is None  # personal data is scrubbed

    gone = await client.get("/api/me", headers=auth.headers(sub=sub))
    assert gone.status_code == 403
    assert gone.json()["type"] == "urn:studio:problem:account-deleted"

    # A late update never brings the user back.
    await post(client, clerk_event("user.updated", clerk_user(sub, email="back@x.test")))
    assert (await user_row(engine, sub)).deleted_at is not None

    msgs = await wait_until(
        lambda: events_for(nats_url, event_namespace, "identity.user.deleted", sub)
    )
    await asyncio.sleep(0.8)
    msgs = await events_for(nats_url, event_namespace, "identity.user.deleted", sub)
    assert len(msgs) == 1
    assert envelope_of(msgs[0])["data"] == {"userId": user_id, "clerkId": sub}


async def test_deleting_a_user_never_seen_keeps_a_tombstone(
    client, engine, nats_url, event_namespace
):
    sub = new_subject()
    r = await post(client, clerk_event("user.deleted", {"id": sub, "deleted": True}))
    assert r.json() == {"status": "processed"}
    await post(client, clerk_event("user.created", clerk_user(sub)))  # out of order
    row = await user_row(engine, sub)
    assert row.deleted_at is not None
    msgs = await wait_until(
        lambda: events_for(nats_url, event_namespace, "identity.user.deleted", sub)
    )
    assert envelope_of(msgs[0])["data"]["userId"] == str(row.id)


# --- configuration -------------------------------------------------------------------------------


async def test_without_a_secret_webhooks_are_refused(dev_server):
    """The dev server has no webhook secret: unsigned requests are 400, signed ones 503."""
    body, headers = signed_webhook(clerk_event("user.created", clerk_user(new_subject())))
    async with httpx.AsyncClient(base_url=dev_server.url) as c:
        unsigned = await c.post(URL, content=body)
        signed = await c.post(URL, content=body, headers=headers)
    assert unsigned.status_code == 400
    assert unsigned.json()["type"] == BAD_SIGNATURE
    assert signed.status_code == 503
    assert signed.json()["type"] == "urn:studio:problem:webhook-not-configured"
