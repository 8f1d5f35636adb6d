"""Service settings.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``CATALOG_``, ``MEDIA_`` ...). Values shared by every service may instead be
given once with the ``STUDIO_`` prefix; a service-specific variable wins.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SHARED_PREFIX = "STUDIO_"
# The audience of identity's development tokens when none is configured.
DEV_JWT_AUDIENCE = "studio-dev"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True
    # Error reporting; SENTRY_DSN works too. Empty = off.
    sentry_dsn: str | None = None

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/studio"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_echo: bool = False

    nats_url: str = "nats://127.0.0.1:4222"
    # Subjects are "<root>.<service>.<entity>.<verb>"; tests use a private root.
    event_subject_root: str = Field(default="studio", pattern=r"^[a-zA-Z0-9_-]+$")
    event_stream: str = Field(default="STUDIO", pattern=r"^[A-Za-z0-9_-]+$")
    # Relay and consumers run inside the API process unless switched off.
    run_outbox_relay: bool = True
    run_consumers: bool = True
    outbox_poll_interval: float = Field(default=0.5, gt=0)
    consumer_max_deliver: int = Field(default=5, ge=1)
    # How often the outbox lag and the consumers' pending counts are measured for /metrics.
    metrics_refresh_seconds: float = Field(default=10.0, gt=0)
    gc_freeze: bool = True

    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
    # Upper bound of `pageSize` on every list endpoint.
    max_page_size: int = Field(default=100, ge=1, le=500)

    jwt_issuer: str = "http://127.0.0.1:8102"
    jwt_audience: str | None = None
    # Clerk session tokens carry `azp` (the frontend origin) instead of `aud`.
    jwt_authorized_parties: list[str] = Field(default_factory=list)
    # Dotted path into the claims, e.g. "role" or "public_metadata.role".
    jwt_role_claim: str = "role"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: int = Field(default=300, ge=1)
    jwks_min_refetch_seconds: float = Field(default=10.0, ge=0)

    # Object storage. Empty endpoint = AWS; development points at a local S3 API.
    s3_endpoint_url: str | None = None
    # Where players and browsers reach S3, when that differs from the services' view.
    s3_public_endpoint_url: str | None = None
    s3_bucket: str = "studio-anime"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_force_path_style: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = EnvSettingsSource(settings_cls, env_prefix=SHARED_PREFIX, case_sensitive=False)
        return (init_settings, env_settings, shared, dotenv_settings, file_secret_settings)

    @property
    def jwt_expected_audience(self) -> str | None:
        """The ``aud`` every token must carry (and the development issuer sets).

        The configured one; else, outside production and unless ``azp`` is
        checked instead (Clerk session tokens carry no ``aud``), the
        development issuer's. None only where ``azp`` is checked or where a
        missing audience refuses to start the service."""
        if self.jwt_audience:
            return self.jwt_audience
        if self.environment != "production" and not self.jwt_authorized_parties:
            return DEV_JWT_AUDIENCE
        return None

    @property
    def service_name(self) -> str:
        prefix = str(self.model_config.get("env_prefix") or "studio_")
        return prefix.rstrip("_").lower()
