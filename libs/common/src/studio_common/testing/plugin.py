"""pytest plugin (loaded for every test run from the root pyproject)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from nats.js.errors import NotFoundError

from studio_common.roles import role_bucket
from studio_common.testing import infra
from studio_common.testing.issuer import TestIssuer


@dataclass(frozen=True)
class EventNamespace:
    """A private subject root and stream, so concurrent runs never collide."""

    subject_root: str
    stream: str


def _server(start: Callable[[], AbstractContextManager[str]]) -> Iterator[str]:
    """The server's URL for the session; the session fails when there is none."""
    try:
        with start() as url:
            yield url
    except infra.NoServer as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    yield from _server(infra.postgres_server)


@pytest.fixture(scope="session")
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh database for this test session, dropped afterwards."""
    async with infra.scratch_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    yield from _server(infra.nats_server)


class EventNamespaces:
    """Hands out private namespaces and deletes their streams at the end."""

    def __init__(self) -> None:
        self.created: list[EventNamespace] = []

    def new(self) -> EventNamespace:
        token = uuid.uuid4().hex[:10]
        ns = EventNamespace(subject_root=f"t{token}", stream=f"T{token.upper()}")
        self.created.append(ns)
        return ns

    @staticmethod
    def settings(ns: EventNamespace) -> dict[str, str]:
        return {"event_subject_root": ns.subject_root, "event_stream": ns.stream}


@pytest.fixture(scope="session")
async def event_namespaces(nats_url: str) -> AsyncIterator[EventNamespaces]:
    """For a service's own tests: a namespace of its own keeps other services'
    test events (and their consumers) out of its way."""
    namespaces = EventNamespaces()
    yield namespaces
    nc = await nats.connect(nats_url)
    try:
        for ns in namespaces.created:
            with suppress(NotFoundError):
                await nc.jetstream().delete_stream(ns.stream)
            with suppress(NotFoundError):  # the role bucket (studio_common.roles)
                await nc.jetstream().delete_stream(f"KV_{role_bucket(ns.stream)}")
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def event_namespace(event_namespaces: EventNamespaces) -> EventNamespace:
    """The namespace shared by ``service_settings`` (cross-service tests)."""
    return event_namespaces.new()


@pytest.fixture(scope="session")
def span_exporter() -> Any:
    """Every span this process finishes, in memory (the SDK provider is global,
    so the exporter is added to whichever provider is installed)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def s3_endpoint_url() -> Iterator[str]:
    with infra.s3_server() as url:
        yield url


@pytest.fixture(scope="session")
def test_issuer() -> Iterator[TestIssuer]:
    issuer = TestIssuer()
    with issuer.serve():
        yield issuer


class Auth:
    """Authorization headers with tokens from the test issuer."""

    def __init__(self, issuer: TestIssuer) -> None:
        self.issuer = issuer

    def headers(
        self, role: str | None = "viewer", sub: str | None = None, email: str | None = None
    ) -> dict[str, str]:
        """A token for ``sub`` (a new user on each call unless given)."""
        return {"Authorization": f"Bearer {self.issuer.mint(sub, role, email=email)}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.headers("admin")

    @property
    def editor(self) -> dict[str, str]:
        return self.headers("editor")

    @property
    def viewer(self) -> dict[str, str]:
        return self.headers("viewer")


@pytest.fixture(scope="session")
def auth(test_issuer: TestIssuer) -> Auth:
    return Auth(test_issuer)


@pytest.fixture(scope="session")
def service_settings(
    database_url: str, nats_url: str, event_namespace: EventNamespace, test_issuer: TestIssuer
) -> dict[str, Any]:
    """Keyword arguments for any service's Settings, pointing at the test servers."""
    return {
        "environment": "test",
        "database_url": database_url,
        "nats_url": nats_url,
        "event_subject_root": event_namespace.subject_root,
        "event_stream": event_namespace.stream,
        "jwks_url": test_issuer.jwks_url,
        "jwt_issuer": test_issuer.issuer,
        "jwt_audience": test_issuer.audience,
        "jwks_min_refetch_seconds": 0.0,
        "outbox_poll_interval": 0.2,
        # Every suite keeps its apps up for the session: small pools keep the
        # whole run well inside Postgres' default 100 connections.
        "database_pool_size": 1,
        "log_json": False,
        # Frozen objects are never collected: a test process starts many apps.
        "gc_freeze": False,
    }


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's real lifespan and give an HTTP client bound to it."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
