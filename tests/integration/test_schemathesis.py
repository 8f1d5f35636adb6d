"""schemathesis over every service's OpenAPI document, against the running service.

Requests generated from the document, valid ones and ones that break it, sent
as an admin (whom every route lets through, so they reach the handlers). Each
answer must be no 5xx, a status the operation declares, with the declared
content type (problem+json for errors), and a request that breaks the schema
(``"yes"`` for a boolean, ``"1000"`` for an integer, a missing field) must be
refused with a 4xx. Bounded: ``STUDIO_SCHEMATHESIS_EXAMPLES`` examples per
operation (default 15); the hostile-input and lax-input tests of
``test_authorization_matrix`` send the fixed worst cases.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import checks

from studio_common.migrations import upgrade
from studio_common.settings import ServiceSettings
from studio_common.testing.infra import create_database, drop_database
from studio_common.testing.issuer import TestIssuer
from studio_common.testing.s3 import s3_client

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]
# Identity as in development, so its development-only routes are tried too.
ENVIRONMENT = {"identity": "development"}
EXAMPLES = int(os.environ.get("STUDIO_SCHEMATHESIS_EXAMPLES", "15"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.negative_data_rejection,
]


def build_app(name: str, **overrides: Any) -> FastAPI:
    config = importlib.import_module(f"studio_{name}.config")
    (settings_cls,) = (
        obj
        for obj in vars(config).values()
        if inspect.isclass(obj)
        and issubclass(obj, ServiceSettings)
        and obj is not ServiceSettings
        and obj.__module__ == config.__name__
    )
    main = importlib.import_module(f"studio_{name}.main")
    app: FastAPI = main.create_app(
        settings_cls(**{**overrides, "environment": ENVIRONMENT.get(name, "test")})
    )
    return app


class ThreadedServer:
    """uvicorn in a thread with its own event loop: schemathesis calls it synchronously."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="module")
def own_database_url(pg_admin_url: str) -> Iterator[str]:
    """A database of this module alone: nothing these servers leave behind (an
    open transaction of a server that would not stop) can block another test."""
    url = asyncio.run(create_database(pg_admin_url, "studio_schemathesis"))
    try:
        yield url
    finally:
        asyncio.run(drop_database(pg_admin_url, url))


@pytest.fixture(scope="module")
def servers(
    service_settings: dict[str, Any],
    own_database_url: str,
    s3_endpoint_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    bucket = f"schemathesis-{uuid.uuid4().hex[:8]}"
    credentials = {"s3_access_key_id": "test", "s3_secret_access_key": "test-secret"}
    s3_client(s3_endpoint_url).create_bucket(Bucket=bucket)
    shared = {
        **service_settings,
        # The documents are under test, not the events: no relay, no consumers.
        "database_url": own_database_url,
        "run_outbox_relay": False,
        "run_consumers": False,
        **credentials,
        "s3_endpoint_url": s3_endpoint_url,
        "s3_bucket": bucket,
    }
    extra: dict[str, dict[str, Any]] = {
        "identity": {"dev_key_path": tmp_path_factory.mktemp("schemathesis") / "jwt-key.pem"},
        # Required outside development.
        "media": {
            "playback_signing_key": "schemathesis-playback-signing-key-0123456789",
            "public_base_url": "http://media.test",
        },
    }
    urls: dict[str, str] = {}
    started: list[ThreadedServer] = []
    try:
        for name in SERVICES:
            upgrade(ROOT / "services" / name, shared["database_url"])
            server = ThreadedServer(build_app(name, **shared, **extra.get(name, {})))
            urls[name] = server.__enter__()
            started.append(server)
        yield urls
    finally:
        for server in reversed(started):
            server.__exit__()


def conformance_test(name: str) -> Callable[..., None]:
    schema = schemathesis.openapi.from_dict(build_app(name).openapi())

    @schema.parametrize()
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def test(case: schemathesis.Case, servers: dict[str, str], test_issuer: TestIssuer) -> None:
        token = test_issuer.mint(f"user_schemathesis_{uuid.uuid4().hex[:8]}", "admin")
        headers = {"Authorization": f"Bearer {token}"}
        case.call_and_validate(base_url=servers[name], headers=headers, checks=CHECKS)

    test.__name__ = f"test_{name}_conforms_to_its_openapi"
    return test


test_catalog_conforms_to_its_openapi = conformance_test("catalog")
test_identity_conforms_to_its_openapi = conformance_test("identity")
test_media_conforms_to_its_openapi = conformance_test("media")
test_transcoder_conforms_to_its_openapi = conformance_test("transcoder")
test_playback_conforms_to_its_openapi = conformance_test("playback")
