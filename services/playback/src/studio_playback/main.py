"""The playback service: Favorites, watchlist and resume positions."""

from __future__ import annotations

from fastapi import FastAPI

from studio_common.app import create_service_app
from studio_playback.config import PlaybackSettings
from studio_playback.models import messaging


def create_app(settings: PlaybackSettings | None = None) -> FastAPI:
    settings = settings or PlaybackSettings()
    return create_service_app(
        settings,
        title="Studio.Anime playback",
        description="Favorites, watchlist and resume positions.",
        routers=[],
        tables=messaging,
    )
