from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from studio_common.events import Envelope, EventPayload
from studio_common.migrations import upgrade
from studio_common.testing.jetstream import publish_envelope
from studio_common.testing.plugin import EventNamespace
from studio_common.testing.s3 import s3_client
from studio_common.testing.suite import own_event_namespace, own_service_settings  # noqa: F401
from studio_media.config import MediaSettings
from studio_media.main import create_app

SERVICE_DIR = Path(__file__).resolve().parents[1]


MiB = 1024**2
SIGNING_KEY = "test-signing-key-" + "x" * 32


@pytest.fixture(scope="session")
def bucket(s3_endpoint_url: str) -> str:
    name = f"media-test-{uuid.uuid4().hex[:8]}"
    s3(s3_endpoint_url).create_bucket(Bucket=name)
    return name


def s3(endpoint: str) -> Any:
    return s3_client(endpoint)


@pytest.fixture(scope="session")
def s3c(s3_endpoint_url: str) -> Any:
    return s3(s3_endpoint_url)


@pytest.fixture(scope="session")
def media_settings(
    service_settings: dict[str, Any], s3_endpoint_url: str, bucket: str
) -> dict[str, Any]:
    """Keyword arguments of MediaSettings for the tests (tests may override some)."""
    upgrade(SERVICE_DIR, service_settings["database_url"])
    return {
        **service_settings,
        "s3_endpoint_url": s3_endpoint_url,
        "s3_bucket": bucket,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test-secret",
        # A private key space per run: parallel runs never share counters.
        "rate_limit_prefix": f"test:{uuid.uuid4().hex[:10]}:rl",
        "presign_rate_limit": 5,
        "presign_rate_window_seconds": 2,
        "playback_rate_limit": 5,
        "playback_rate_window_seconds": 2,
        "multipart_part_size": 5 * MiB,
        "max_source_bytes": 64 * MiB,
        "max_image_bytes": 1 * MiB,
        "max_subtitle_bytes": 64 * 1024,
        "upload_cleanup_interval_seconds": 0,
        "playback_signing_key": SIGNING_KEY,
        "playback_url_ttl_seconds": 600,
        # Servers on a real port use their own (see serve_http).
        "public_base_url": "http://media.test",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve_http(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Run the app with uvicorn on a real port, lifespan included; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the media server stopped during startup")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def media_app(media_settings: dict[str, Any]) -> AsyncIterator[FastAPI]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(MediaSettings(**{**media_settings, "public_base_url": url}))
    async with serve_http(app, port) as base_url:
        app.state.base_url = base_url
        yield app


@pytest.fixture(scope="session")
async def replica(media_settings: dict[str, Any], media_app: FastAPI) -> AsyncIterator[FastAPI]:
    """A second replica on the same database and Redis; it redirects segments to S3."""
    port = free_port()
    settings = MediaSettings(
        **{
            **media_settings,
            "run_consumers": False,
            "hls_segment_delivery": "redirect",
            "public_base_url": f"http://127.0.0.1:{port}",
        }
    )
    app = create_app(settings)
    async with serve_http(app, port) as base_url:
        app.state.base_url = base_url
        yield app


@pytest.fixture
async def client(media_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=media_app.state.base_url, timeout=30) as c:
        yield c


async def publish(
    nats_url: str, ns: EventNamespace, payload: EventPayload, **update: Any
) -> Envelope:
    env = Envelope.wrap(payload)
    if update:
        env = env.model_copy(update=update)
    return await publish_envelope(nats_url, ns.subject_root, ns.stream, env)


# Test modules cannot import conftest (importlib import mode): helpers are fixtures.


@pytest.fixture(scope="session")
def signing_key() -> bytes:
    return SIGNING_KEY.encode()


@pytest.fixture(scope="session")
def publish_event(nats_url: str, event_namespace: EventNamespace) -> Any:
    async def run(payload: EventPayload, **update: Any) -> Envelope:
        return await publish(nats_url, event_namespace, payload, **update)

    return run
