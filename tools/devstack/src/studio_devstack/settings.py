"""What the local stack reads from the environment (and from `.env`, if present).

Every variable is documented in `.env.example` at the repository root. The
`STUDIO_*` values that services read are passed on to each process, so a
service sees exactly the servers the stack chose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from honcho.environ import parse as parse_env_file

from studio_devstack.gateway import parse_cors_origins
from studio_devstack.routes import ROUTES_RELATIVE_PATH

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/studio"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CORS_ORIGINS = "http://localhost:3000,http://127.0.0.1:3000,http://localhost:5173"
IDENTITY_PORT = 8102
# Every port the stack opens is its base plus STUDIO_PORT_OFFSET: the gateway
# 8080, the services 8101-8105 (the route table), the transcoder worker's
# metrics 8109 and the S3 stand-in 9000. The stack's ports stay within 8080-8109
# and 9000, so any offset that is a multiple of 1000 (and every one of the e2e
# stack's, 10000 and up) collides with no port of the default stack.
GATEWAY_PORT = 8080
S3_PORT = 9000
# The transcoder worker's metrics port under the stack when
# TRANSCODER_WORKER_METRICS_PORT is not set (the worker alone defaults to 9464,
# which is no port of any stack at an offset that is a multiple of 1000).
WORKER_METRICS_PORT = 8109


@dataclass(frozen=True)
class DevSettings:
    root: Path
    data_dir: Path
    routes_file: Path
    environment: str
    database_url: str
    nats_url: str
    redis_url: str
    gateway_port: int
    cors_origins: tuple[str, ...]
    client_max_body_size: str
    s3_port: int
    s3_bucket: str
    s3_region: str
    s3_access_key_id: str
    s3_secret_access_key: str
    # Set only when the developer points the stack at an S3 of their own;
    # otherwise the stack runs its local stand-in on `s3_port`.
    s3_external_endpoint_url: str | None
    jwks_url: str
    jwt_issuer: str
    # Added to every port the stack opens (see GATEWAY_PORT) unless that port
    # is given: a second stack beside the developer's own, e.g. for the
    # end-to-end tests.
    port_offset: int = 0
    # The transcoder worker's Prometheus port: TRANSCODER_WORKER_METRICS_PORT as
    # given (0 = off), else the default plus the offset.
    worker_metrics_port: int = WORKER_METRICS_PORT
    # The demo player signs in with Clerk when set (pk_test_... / pk_live_...).
    clerk_publishable_key: str = ""
    # Whose X-Forwarded-For the services believe: the gateway, on loopback.
    trusted_proxies: str = "127.0.0.1"
    # Where players reach media's /hls/ URLs: the gateway, so a playback URL
    # works as it is (curl, a player on another origin), never the request's Host.
    media_public_base_url: str = ""
    # STUDIO_IMAGES=1: the services run from their images (`make images`).
    images: bool = False

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        root: Path,
        *,
        data_dir: Path | None = None,
        routes_file: Path | None = None,
    ) -> DevSettings:
        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        offset = _port_offset(get("STUDIO_PORT_OFFSET", "0"))
        identity_port = _port(str(IDENTITY_PORT + offset), "STUDIO_PORT_OFFSET")
        # A port given explicitly is taken as it is (0 = off); the default moves.
        name = "TRANSCODER_WORKER_METRICS_PORT"
        raw_metrics_port = get(name, "")
        if raw_metrics_port == "0":
            metrics_port = 0
        elif raw_metrics_port:
            metrics_port = _port(raw_metrics_port, name)
        else:
            metrics_port = _port(str(WORKER_METRICS_PORT + offset), "STUDIO_PORT_OFFSET")
        gateway_port = _port(get("STUDIO_PORT", str(GATEWAY_PORT + offset)), "STUDIO_PORT")
        return cls(
            root=root,
            # A relative STUDIO_DATA_DIR is taken from the checkout, not the cwd.
            data_dir=data_dir or root / get("STUDIO_DATA_DIR", ".data"),
            routes_file=routes_file or root / ROUTES_RELATIVE_PATH,
            # The local stack is for development unless told otherwise; the
            # services alone would run as production.
            environment=get("STUDIO_ENVIRONMENT", "development"),
            database_url=get("STUDIO_DATABASE_URL", DEFAULT_DATABASE_URL),
            nats_url=get("STUDIO_NATS_URL", DEFAULT_NATS_URL),
            redis_url=get("STUDIO_REDIS_URL", DEFAULT_REDIS_URL),
            gateway_port=gateway_port,
            cors_origins=parse_cors_origins(env.get("STUDIO_CORS_ORIGINS", DEFAULT_CORS_ORIGINS)),
            client_max_body_size=get("STUDIO_GATEWAY_MAX_BODY_SIZE", "16m"),
            s3_port=_port(get("STUDIO_S3_PORT", str(S3_PORT + offset)), "STUDIO_S3_PORT"),
            s3_bucket=get("STUDIO_S3_BUCKET", "studio-anime"),
            s3_region=get("STUDIO_S3_REGION", "us-east-1"),
            # The local stand-in accepts any key; these only have to be consistent.
            s3_access_key_id=get("STUDIO_S3_ACCESS_KEY_ID", "devstack"),
            s3_secret_access_key=get("STUDIO_S3_SECRET_ACCESS_KEY", "devstack-not-a-secret"),
            s3_external_endpoint_url=env.get("STUDIO_S3_ENDPOINT_URL", "").strip() or None,
            jwks_url=get(
                "STUDIO_JWKS_URL", f"http://127.0.0.1:{identity_port}/.well-known/jwks.json"
            ),
            jwt_issuer=get("STUDIO_JWT_ISSUER", f"http://127.0.0.1:{identity_port}"),
            port_offset=offset,
            worker_metrics_port=metrics_port,
            clerk_publishable_key=get("STUDIO_CLERK_PUBLISHABLE_KEY", ""),
            trusted_proxies=get("STUDIO_TRUSTED_PROXIES", "127.0.0.1"),
            media_public_base_url=get("MEDIA_PUBLIC_BASE_URL", f"http://127.0.0.1:{gateway_port}"),
            images=get("STUDIO_IMAGES", "0").lower() in {"1", "true", "yes", "on"},
        )

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3_external_endpoint_url or f"http://127.0.0.1:{self.s3_port}"

    @property
    def runs_local_s3(self) -> bool:
        return self.s3_external_endpoint_url is None

    @property
    def gateway_dir(self) -> Path:
        return self.data_dir / "gateway"

    def service_env(self) -> dict[str, str]:
        """The shared `STUDIO_*` settings every service process gets."""
        return {
            "STUDIO_ENVIRONMENT": self.environment,
            "STUDIO_DATABASE_URL": self.database_url,
            "STUDIO_NATS_URL": self.nats_url,
            "STUDIO_REDIS_URL": self.redis_url,
            "STUDIO_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "STUDIO_S3_BUCKET": self.s3_bucket,
            "STUDIO_S3_REGION": self.s3_region,
            "STUDIO_S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "STUDIO_S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
            "STUDIO_JWKS_URL": self.jwks_url,
            "STUDIO_JWT_ISSUER": self.jwt_issuer,
            "STUDIO_TRUSTED_PROXIES": self.trusted_proxies,
            "MEDIA_PUBLIC_BASE_URL": self.media_public_base_url,
            # Log lines reach the terminal as they are written, not in 4 KiB bursts.
            "PYTHONUNBUFFERED": "1",
        }


def _port(raw: str, name: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{name}={port} is out of range")
    return port


def _port_offset(raw: str) -> int:
    try:
        offset = int(raw)
    except ValueError:
        raise ValueError(f"STUDIO_PORT_OFFSET={raw!r} is not a number") from None
    if not 0 <= offset <= 50000:
        raise ValueError(f"STUDIO_PORT_OFFSET={offset} must be between 0 and 50000")
    return offset


def host_and_port(url: str, default_port: int) -> tuple[str, int]:
    """Host and port of a server URL (`postgresql+asyncpg://u@h:p/db`, `nats://h:p`)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    return parts.hostname, parts.port or default_port


def environment_with_dotenv(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over the values of `<root>/.env`: a variable set in
    the shell wins over the file, as with most dotenv tools."""
    env: dict[str, str] = {}
    dotenv = root / ".env"
    if dotenv.is_file():
        env.update(parse_env_file(dotenv.read_text(encoding="utf-8")))
    env.update(os.environ if environ is None else environ)
    return env


def find_root(start: Path) -> Path:
    """The checkout that contains `start`: the first directory above it with the route
    table, else this package's own checkout."""
    for directory in (start, *start.parents):
        if (directory / ROUTES_RELATIVE_PATH).is_file():
            return directory
    return Path(__file__).resolve().parents[4]
