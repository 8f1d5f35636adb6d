from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from studio_catalog import repository
from studio_catalog.config import CatalogSettings
from studio_catalog.main import create_app
from studio_catalog.subscribers import on_upload_verified
from studio_common.events import Envelope, UploadVerifiedV1
from studio_common.testing.plugin import Auth
from studio_common.testing.served import migrated_settings, served_app_fixtures
from studio_common.testing.suite import own_event_namespace, own_service_settings  # noqa: F401

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def catalog_settings(service_settings: dict[str, Any]) -> CatalogSettings:
    return CatalogSettings(
        **migrated_settings(SERVICE_DIR, service_settings),
        consumer_max_deliver=3,
        source_wait_seconds=5.0,
    )


catalog_app, client = served_app_fixtures("catalog_app", create_app, settings="catalog_settings")


@pytest.fixture(autouse=True)
async def clean_catalog(catalog_settings: CatalogSettings) -> AsyncIterator[None]:
    yield
    engine = create_async_engine(catalog_settings.database_url)
    async with engine.begin() as conn:
        await conn.execute(
            text("TRUNCATE catalog.titles, catalog.search_words, catalog.verified_uploads CASCADE")
        )
    await engine.dispose()
    # The word list went behind the service's back.
    repository.forget_words()


def unique_slug(prefix: str = "show") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def add_verified_upload(
    app: Any,
    owner: str,
    *,
    kind: str = "source",
    filename: str = "source.mp4",
    attached_to: uuid.UUID | None = None,
) -> UploadVerifiedV1:
    """What media's ``media.upload.verified`` leaves in catalog, through the projection's handler."""
    upload_id = uuid.uuid4()
    prefix = {"source": "uploads", "subtitle": "subtitles", "poster": "posters"}[kind]
    event = UploadVerifiedV1(
        upload_id=upload_id,
        key=f"{prefix}/{upload_id}/{filename}",
        kind=kind,
        owner=owner,
        size=1000,
        content_type="video/mp4" if kind == "source" else "text/vtt",
        format="mp4" if kind == "source" else filename.rsplit(".", 1)[-1],
        filename=filename,
        attached_to=attached_to,
    )
    async with app.state.runtime.database.transaction() as session:
        await on_upload_verified(event, Envelope.wrap(event), session)
    return event


class Factory:
    """Creates catalog objects through the admin API, as an editor would."""

    def __init__(self, client: httpx.AsyncClient, auth: Auth, app: Any) -> None:
        self.client = client
        self.auth = auth
        self.app = app
        self.editor_sub = f"editor_{uuid.uuid4().hex[:8]}"

    @staticmethod
    def names(
        romaji: str, english: str | None, native: str | None, *synonyms: str
    ) -> list[dict[str, str]]:
        """A title's ``names`` as the admin API takes them."""
        out = [{"kind": "romaji", "language": "ja", "name": romaji}]
        if english:
            out.append({"kind": "english", "language": "en", "name": english})
        if native:
            out.append({"kind": "native", "language": "ja", "name": native})
        out += [{"kind": "synonym", "language": "en", "name": s} for s in synonyms]
        return out

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

    async def any_episode(self) -> dict[str, Any]:
        """Episode 1 of season 1 of a new title: for tests about one episode."""
        title = await self.title()
        season = await self.season(title["id"])
        return await self.episode(season["id"])

    async def source(self, filename: str = "source.mp4") -> str:
        """The key of a source media verified for this factory's editor."""
        return (await add_verified_upload(self.app, self.editor_sub, filename=filename)).key

    async def episode(self, season_id: str, number: int = 1, **over: Any) -> dict[str, Any]:
        body = {
            "seasonId": season_id,
            "number": number,
            "name": f"Episode {number}",
            **over,
        }
        if "sourceKey" not in body:
            body["sourceKey"] = await self.source()
        r = await self.client.post(
            "/api/admin/episodes", json=body, headers=self.auth.headers("editor", self.editor_sub)
        )
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data


@pytest.fixture
def make(client: httpx.AsyncClient, auth: Auth, catalog_app: Any) -> Factory:
    return Factory(client, auth, catalog_app)


@pytest.fixture
def verified_upload(catalog_app: Any) -> Any:
    """``await verified_upload(owner, kind=..., filename=..., attached_to=...)`` → the event."""

    async def run(owner: str, **kw: Any) -> UploadVerifiedV1:
        return await add_verified_upload(catalog_app, owner, **kw)

    return run
