"""The catalog service: titles, seasons, episodes and their transcode state."""

from __future__ import annotations

from fastapi import FastAPI

from studio_catalog import sources, subscribers
from studio_catalog.api import admin, public
from studio_catalog.api.listing import TitleListFastPath
from studio_catalog.config import CatalogSettings
from studio_catalog.models import messaging
from studio_common.app import create_service_app
from studio_common.consumer import EventConsumers


def _register(consumers: EventConsumers) -> None:
    subscribers.register(consumers)
    sources.register(consumers)


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    settings = settings or CatalogSettings()
    app = create_service_app(
        settings,
        title="Studio.Anime catalog",
        description="Titles, seasons and episodes; search, filters and pagination; transcode state.",
        routers=[public.router, admin.router],
        tables=messaging,
        register_consumers=_register,
        # Browsing: the gateway logs every request already.
        quiet_routes={("GET", "/api/titles")},
    )
    if settings.list_fast_path:
        TitleListFastPath.install(app)
    return app
