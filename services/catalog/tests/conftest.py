from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from studio_catalog.config import CatalogSettings
from studio_catalog.main import create_app
from studio_common.migrations import upgrade
from studio_common.testing.plugin import Auth, EventNamespace, EventNamespaces, serve_app

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def event_namespace(event_namespaces: EventNamespaces) -> EventNamespace:
    """This suite's own stream: other suites' test events never reach its consumers."""
    return event_namespaces.new()


@pytest.fixture(scope="session")
def service_settings(
    service_settings: dict[str, Any], event_namespace: EventNamespace
) -> dict[str, Any]:
    return {**service_settings, **EventNamespaces.settings(event_namespace)}


@pytest.fixture(scope="session")
def catalog_settings(service_settings: dict[str, Any]) -> CatalogSettings:
    upgrade(SERVICE_DIR, service_settings["database_url"])
    return CatalogSettings(**service_settings, consumer_max_deliver=3)


@pytest.fixture(scope="session")
async def catalog_app(catalog_settings: CatalogSettings) -> AsyncIterator[Any]:
    app = create_app(catalog_settings)
    async with serve_app(app) as client:
        app.state.test_client = client
        yield app


@pytest.fixture
async def client(catalog_app: Any) -> httpx.AsyncClient:
    c: httpx.AsyncClient = catalog_app.state.test_client
    return c


@pytest.fixture(autouse=True)
async def clean_catalog(catalog_settings: CatalogSettings) -> AsyncIterator[None]:
    yield
    engine = create_async_engine(catalog_settings.database_url)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE catalog.titles CASCADE"))
    await engine.dispose()


def unique_slug(prefix: str = "show") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Factory:
    """Creates catalog objects through the admin API, as an editor would."""

    def __init__(self, client: httpx.AsyncClient, auth: Auth) -> None:
        self.client = client
        self.auth = auth

    async def title(self, **over: Any) -> dict[str, Any]:
        body = {"slug": unique_slug(), "name": "Some Show", "type": "series", **over}
        r = await self.client.post("/api/admin/titles", json=body, headers=self.auth.editor)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    async def season(self, title_id: str, number: int = 1) -> dict[str, Any]:
        r = await self.client.post(
            "/api/admin/seasons",
            json={"titleId": title_id, "number": number},
            headers=self.auth.editor,
        )
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    async def episode(self, season_id: str, number: int = 1, **over: Any) -> dict[str, Any]:
        body = {
            "seasonId": season_id,
            "number": number,
            "name": f"Episode {number}",
            "sourceKey": f"uploads/{uuid.uuid4().hex}/source.mp4",
            **over,
        }
        r = await self.client.post("/api/admin/episodes", json=body, headers=self.auth.editor)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data


@pytest.fixture
def make(client: httpx.AsyncClient, auth: Auth) -> Factory:
    return Factory(client, auth)
