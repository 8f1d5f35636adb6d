"""Service settings.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``CATALOG_``, ``MEDIA_`` ...). Values shared by every service may instead be
given once with the ``STUDIO_`` prefix; a service-specific variable wins.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator
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

    # Production unless development is asked for: a forgotten variable must not
    # open the development issuer or sign with a throwaway key.
    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    log_json: bool = True
    # Error reporting; SENTRY_DSN works too. Empty = off.
    sentry_dsn: str | None = None

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/studio"
    # Connections per process (docs/conventions.md, "Connection budget"): a
    # transaction pool and a read pool, each with up to max_overflow more under load.
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    database_read_pool_size: int = Field(default=10, ge=1, le=200)
    # The Postgres server's max_connections, which every process of every service
    # shares: deploy/tests/test_connection_budget.py checks the chart's maxima
    # against it. Nothing reads it at run time.
    database_max_connections: int = Field(default=100, ge=1)
    database_echo: bool = False

    nats_url: str = "nats://127.0.0.1:4222"
    # A lost NATS connection is retried forever, waiting up to this long
    # (jittered) between attempts; the outbox holds events meanwhile.
    nats_reconnect_max_seconds: float = Field(default=10.0, gt=0)
    # A process starting while NATS is away gives up after this long (and its
    # supervisor starts it again): until then it cannot even act on SIGTERM.
    nats_startup_wait_seconds: float = Field(default=20.0, gt=0)
    # Subjects are "<root>.<service>.<entity>.<verb>"; tests use a private root.
    event_subject_root: str = Field(default="studio", pattern=r"^[a-zA-Z0-9_-]+$")
    event_stream: str = Field(default="STUDIO", pattern=r"^[A-Za-z0-9_-]+$")
    # Copies of the event stream JetStream keeps: 3 on a 3-node cluster, so one
    # server may go (a node drain, an upgrade) without losing or pausing events.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
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
    # Required outside development (this or jwt_authorized_parties).
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

    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed: the gateway or
    # ingress controller (comma-separated IPs or CIDRs). Anyone else is the client
    # itself, whatever it writes in those headers. Empty: nobody is trusted.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR range") from None
        return value

    def database_connections(self) -> int:
        """The most Postgres connections one process of this service opens: both
        pools full with their overflow, and the outbox relay's LISTEN connection.
        Services with a pool of their own add it."""
        pools = self.database_pool_size + self.database_read_pool_size
        return pools + 2 * self.database_max_overflow + 1

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    def startup_problems(self) -> list[str]:
        """Settings this service cannot start with, each naming its variable.
        Subclasses extend the list; the app factory refuses to start on any."""
        problems: list[str] = []
        if not self.development and not (self.jwt_audience or self.jwt_authorized_parties):
            problems.append(
                "STUDIO_JWT_AUDIENCE (or STUDIO_JWT_AUTHORIZED_PARTIES) is required outside "
                "development: tokens minted for another application must not be accepted"
            )
        return problems

    def check_startup(self) -> None:
        """Raise :class:`SettingsError` listing every problem of :meth:`startup_problems`."""
        problems = self.startup_problems()
        if problems:
            raise SettingsError(
                f"{self.service_name} cannot start (STUDIO_ENVIRONMENT={self.environment}): "
                + "; ".join(problems)
            )

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


class SettingsError(RuntimeError):
    """Settings a service cannot run with; the message names each variable."""
