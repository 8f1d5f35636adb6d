"""The catalog service: titles, seasons, episodes and their transcode state."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from studio_catalog import subscribers
from studio_catalog.api import admin, public
from studio_catalog.api.listing import TitleListFastPath
from studio_catalog.config import CatalogSettings
from studio_catalog.context import CatalogContext
from studio_catalog.models import messaging
from studio_catalog.reads import TitleLists, create_pool
from studio_common.app import Runtime, create_service_app


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    settings = settings or CatalogSettings()

    async def context(runtime: Runtime[CatalogContext], stack: AsyncExitStack) -> CatalogContext:
        pool = await create_pool(settings.database_url, settings.list_pool_size)
        stack.push_async_callback(pool.close)
        return CatalogContext(lists=TitleLists(pool, settings.total_count_cap))

    app = create_service_app(
        settings,
        title="Studio.Anime catalog",
        description="Titles, seasons and episodes; search, filters and pagination; transcode state.",
        routers=[public.router, admin.router],
        tables=messaging,
        register_consumers=subscribers.register,
        context=context,
        # Browsing: the gateway logs every request already.
        quiet_routes={("GET", "/api/titles")},
    )
    if settings.list_fast_path:
        TitleListFastPath.install(app)
    return app
