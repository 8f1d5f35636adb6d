"""What every service does at its edge: refuse to start half-configured, believe
forwarded addresses only from trusted proxies, never redirect to the request's
Host, and keep authenticated responses out of caches."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from studio_common.access import Access, access
from studio_common.app import create_service_app
from studio_common.settings import ServiceSettings, SettingsError
from studio_common.testing.plugin import Auth, serve_app


class EdgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMMONTEST_")


router = APIRouter()


@router.get("/client", **access(Access.public))
async def client_of(request: Request) -> dict[str, str]:
    assert request.client is not None
    return {"host": request.client.host, "scheme": request.url.scheme}


@router.get("/items", **access(Access.public))
async def items() -> dict[str, list[int]]:
    return {"items": [1, 2]}


@router.get("/cached", **access(Access.public))
async def cached(response: Response) -> dict[str, bool]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return {"cached": True}


@router.get("/mine", **access(Access.user))
async def mine() -> dict[str, bool]:
    return {"mine": True}


def app_for(service_settings: dict[str, Any], **over: Any) -> Any:
    settings = EdgeSettings(**{**service_settings, **over})
    return create_service_app(settings, title="edge", routers=[router])


# --- fail closed --------------------------------------------------------------------------


def test_production_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STUDIO_ENVIRONMENT", raising=False)
    monkeypatch.delenv("COMMONTEST_ENVIRONMENT", raising=False)
    assert EdgeSettings().environment == "production"


@pytest.mark.parametrize("environment", ["production", "test"])
async def test_no_audience_outside_development_stops_the_service_at_startup(
    service_settings: dict[str, Any], environment: str
) -> None:
    app = app_for(
        service_settings, environment=environment, jwt_audience=None, jwt_authorized_parties=[]
    )
    with pytest.raises(SettingsError, match="STUDIO_JWT_AUDIENCE"):
        async with serve_app(app):
            pass


async def test_an_audience_or_authorized_parties_is_enough(
    service_settings: dict[str, Any],
) -> None:
    for over in ({"jwt_audience": "studio-api"}, {"jwt_authorized_parties": ["https://a.test"]}):
        settings = EdgeSettings(
            **{**service_settings, "environment": "production", "jwt_audience": None, **over}
        )
        assert settings.startup_problems() == []
    dev = EdgeSettings(**{**service_settings, "environment": "development", "jwt_audience": None})
    assert dev.startup_problems() == []


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ValidationError, match="not an IP address"):
        EdgeSettings(trusted_proxies="127.0.0.1, gateway")
    settings = EdgeSettings(trusted_proxies=" 127.0.0.1, 10.0.0.0/8 ,")
    assert settings.trusted_proxy_list == ["127.0.0.1", "10.0.0.0/8"]


# --- real client addresses -----------------------------------------------------------------


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    service_settings: dict[str, Any],
) -> None:
    # The test client connects from 127.0.0.1, which is not trusted here.
    app = app_for(service_settings, trusted_proxies="10.0.0.1")
    async with serve_app(app) as client:
        r = await client.get(
            "/client", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        )
    assert r.json() == {"host": "127.0.0.1", "scheme": "http"}


async def test_a_trusted_proxy_names_the_client_in_logs_too(
    service_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(service_settings, trusted_proxies="127.0.0.1")
    caplog.set_level(logging.INFO, logger="studio.access")
    async with serve_app(app) as client:
        # The rightmost address the trusted proxy did not add itself is the client;
        # what the client wrote before it is not believed.
        r = await client.get(
            "/client",
            headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https"},
        )
    assert r.json() == {"host": "203.0.113.9", "scheme": "https"}
    [line] = [
        x
        for x in caplog.records
        if x.name == "studio.access" and getattr(x, "route", "") == "/client"
    ]
    assert getattr(line, "client", None) == "203.0.113.9"


# --- no host reflection --------------------------------------------------------------------


async def test_no_slash_redirect_names_the_request_host(service_settings: dict[str, Any]) -> None:
    app = app_for(service_settings)
    async with serve_app(app) as client:
        r = await client.get("/items/", headers={"Host": "evil.example"})
    assert r.status_code == 404
    assert "location" not in r.headers
    assert r.headers["content-type"] == "application/problem+json"


# --- caching -------------------------------------------------------------------------------


async def test_authenticated_responses_are_not_stored(
    service_settings: dict[str, Any], auth: Auth
) -> None:
    app = app_for(service_settings)
    async with serve_app(app) as client:
        for path in ("/mine", "/items", "/cached"):
            r = await client.get(path, headers=auth.viewer)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["cache-control"] == "no-store", path
            assert r.headers["vary"] == "Authorization", path
        # A route that needs a token answers no-store without one too.
        r = await client.get("/mine")
        assert r.status_code == 401
        assert r.headers["cache-control"] == "no-store"


async def test_anonymous_public_reads_keep_their_caching(
    service_settings: dict[str, Any],
) -> None:
    app = app_for(service_settings)
    async with serve_app(app) as client:
        r = await client.get("/cached")
        assert r.headers["cache-control"] == "public, max-age=60"
        assert r.headers["vary"] == "Authorization"
        r = await client.get("/items")
        assert "cache-control" not in r.headers
