"""The identity service: Users, roles and the development token issuer."""

from __future__ import annotations

from fastapi import FastAPI

from studio_common.app import create_service_app
from studio_identity.config import IdentitySettings
from studio_identity.models import messaging


def create_app(settings: IdentitySettings | None = None) -> FastAPI:
    settings = settings or IdentitySettings()
    return create_service_app(
        settings,
        title="Studio.Anime identity",
        description="Users, roles and the development token issuer.",
        routers=[],
        tables=messaging,
    )
