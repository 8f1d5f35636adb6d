"""The Clerk role sink against a fake Clerk Backend API over real HTTP on loopback."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from studio_common.testing.infra import free_port
from studio_identity.clerk import ClerkRoleSink, NoOpRoleSink, RoleSinkError
from studio_identity.config import IdentitySettings
from studio_identity.main import role_sink_for

from .conftest import fake_clerk_server


@pytest.fixture
def clerk():
    with fake_clerk_server() as fake:
        yield fake


async def test_role_is_patched_into_public_metadata(clerk):
    sink = ClerkRoleSink("sk_test_abc", base_url=clerk.url)
    try:
        await sink.set_role("user_2abc", "editor")
    finally:
        await sink.aclose()
    (req,) = clerk.requests
    assert req["method"] == "PATCH"
    assert req["path"] == "/v1/users/user_2abc/metadata"
    assert req["headers"]["authorization"] == "Bearer sk_test_abc"
    assert req["headers"]["content-type"] == "application/json"
    assert req["json"] == {"public_metadata": {"role": "editor"}}


async def test_the_user_id_cannot_escape_the_path(clerk):
    sink = ClerkRoleSink("sk", base_url=clerk.url)
    try:
        await sink.set_role("../../admin?x=1", "viewer")
    finally:
        await sink.aclose()
    assert clerk.requests[0]["path"] == "/v1/users/..%2F..%2Fadmin%3Fx%3D1/metadata"


async def test_a_user_clerk_no_longer_knows_is_skipped(clerk):
    clerk.fail_next("user_gone", 404)
    sink = ClerkRoleSink("sk", base_url=clerk.url)
    try:
        await sink.set_role("user_gone", "viewer")  # no error: nothing left to update
    finally:
        await sink.aclose()


@pytest.mark.parametrize("status", [401, 422, 429, 500, 503])
async def test_errors_are_raised_for_a_retry(clerk, status):
    clerk.fail_next("user_1", status)
    sink = ClerkRoleSink("sk", base_url=clerk.url)
    try:
        with pytest.raises(RoleSinkError, match=str(status)):
            await sink.set_role("user_1", "admin")
    finally:
        await sink.aclose()


async def test_an_unreachable_clerk_is_an_error():
    sink = ClerkRoleSink("sk", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    try:
        with pytest.raises(RoleSinkError, match="not reachable"):
            await sink.set_role("user_1", "admin")
    finally:
        await sink.aclose()


def test_the_sink_follows_the_secret_key(tmp_path):
    # Without a key roles stay local, which only development allows.
    assert isinstance(role_sink_for(IdentitySettings(environment="development")), NoOpRoleSink)
    settings = IdentitySettings(clerk_secret_key=SecretStr("sk_live_x"))
    sink = role_sink_for(settings)
    assert isinstance(sink, ClerkRoleSink)
    assert sink.base_url == "https://api.clerk.com/v1"
    assert "sk_live_x" not in repr(settings)
