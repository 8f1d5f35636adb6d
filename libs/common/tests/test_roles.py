"""The role projection (ADR 7): loaded before serving, kept by a watch, only ever lowering a role."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack

import nats
import pytest

from studio_common.auth import Principal, Role
from studio_common.roles import (
    RoleProjection,
    RoleRecord,
    open_bucket,
    role_key,
    start_role_projection,
    subject_of,
    write_role,
)
from studio_common.testing.jetstream import wait_until


@pytest.mark.parametrize("subject", ["user_2abc", "a.b>c*", "x:y@z|w", "ü" * 50, "sp ace"])
def test_any_subject_makes_a_valid_key(subject):
    key = role_key(subject)
    assert subject_of(key) == subject
    assert all(c.isalnum() or c in "-_" for c in key)


@pytest.mark.parametrize(
    ("token", "identity", "effective"),
    [
        (Role.admin, Role.viewer, Role.viewer),
        (Role.admin, Role.editor, Role.editor),
        (Role.viewer, Role.admin, Role.viewer),  # never raised
        (Role.editor, Role.editor, Role.editor),
    ],
)
def test_the_lower_role_wins(token, identity, effective):
    projection = RoleProjection()
    projection.apply(role_key("u"), RoleRecord(identity, 1).encode(), None)
    assert projection.effective(Principal(subject="u", role=token)).role is effective
    # Someone identity never changed keeps the token's role.
    assert projection.effective(Principal(subject="v", role=token)).role is token


def test_a_deleted_user_keeps_no_privileges():
    projection = RoleProjection()
    projection.apply(role_key("u"), RoleRecord(Role.admin, 3, deleted=True).encode(), None)
    assert projection.effective(Principal(subject="u", role=Role.admin)).role is Role.viewer


async def test_a_projection_loads_what_is_there_and_follows_changes(nats_url):
    stream = f"T{uuid.uuid4().hex[:10].upper()}"
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        kv = await open_bucket(js, f"{stream}_ROLES")
        await write_role(kv, "user_before", RoleRecord(Role.viewer, 1))
        async with AsyncExitStack() as stack:
            projection, _ = await start_role_projection(js, stream, stack)
            # Loaded before start returns: a service restarted after a demotion has it.
            assert projection.get("user_before") == RoleRecord(Role.viewer, 1)
            await write_role(kv, "user_after", RoleRecord(Role.editor, 1))
            await wait_until(lambda: projection.get("user_after"), within=5)
            await kv.delete(role_key("user_after"))
            await wait_until(lambda: projection.get("user_after") is None, within=5)
        await js.delete_stream(f"KV_{stream}_ROLES")
    finally:
        await nc.close()


async def test_an_empty_bucket_loads_at_once(nats_url):
    stream = f"T{uuid.uuid4().hex[:10].upper()}"
    nc = await nats.connect(nats_url)
    try:
        async with AsyncExitStack() as stack:
            projection, _ = await start_role_projection(nc.jetstream(), stream, stack)
            assert projection.loaded.is_set()
        await nc.jetstream().delete_stream(f"KV_{stream}_ROLES")
    finally:
        await nc.close()
