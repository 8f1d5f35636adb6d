"""The transcoder service: FFmpeg HLS ladder jobs."""

from __future__ import annotations

from fastapi import FastAPI

from studio_common.app import create_service_app
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.models import messaging


def create_app(settings: TranscoderSettings | None = None) -> FastAPI:
    settings = settings or TranscoderSettings()
    return create_service_app(
        settings,
        title="Studio.Anime transcoder",
        description="FFmpeg HLS ladder jobs.",
        routers=[],
        tables=messaging,
    )
