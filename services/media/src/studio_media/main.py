"""The media service: Uploads to S3 and signed HLS playback URLs."""

from __future__ import annotations

from fastapi import FastAPI

from studio_common.app import create_service_app
from studio_media.config import MediaSettings
from studio_media.models import messaging


def create_app(settings: MediaSettings | None = None) -> FastAPI:
    settings = settings or MediaSettings()
    return create_service_app(
        settings,
        title="Studio.Anime media",
        description="Uploads to S3 and signed HLS playback URLs.",
        routers=[],
        tables=messaging,
    )
