"""The FastAPI adapter over the process runtime (:mod:`studio_common.runtime`).

``create_service_app`` builds nothing at import time: the lifespan runs the
service's :class:`~studio_common.runtime.ServiceRuntime` (database, NATS, the
JWT verifier, the outbox relay, the consumers, the service's typed context)
and adds what HTTP needs on top: middleware, problem+json errors, the probes
and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from studio_common.caching import CachePolicyMiddleware
from studio_common.errors import ServiceUnavailable, install_problem_handlers, problem_response
from studio_common.observability import RequestContextMiddleware, RequestMetrics, redact_span_hook
from studio_common.openapi import install_problem_openapi
from studio_common.outbox import MessagingTables
from studio_common.runtime import (
    ConsumerRegistration,
    ContextFactory,
    Runtime,
    ServiceRuntime,
)
from studio_common.settings import ServiceSettings

__all__ = [
    "ConsumerRegistration",
    "ContextFactory",
    "Runtime",
    "RuntimeDep",
    "context_dependency",
    "create_service_app",
    "running",
    "runtime_of",
    "settings_of",
]

C = TypeVar("C")
S = TypeVar("S", bound=ServiceSettings)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    tables: MessagingTables | None = None,
    produces_events: bool = True,
    register_consumers: ConsumerRegistration | None = None,
    context: ContextFactory[Any] | None = None,
    description: str = "",
    quiet_routes: Collection[tuple[str, str]] = (),
) -> FastAPI:
    """The service's FastAPI app, with its lifespan, middleware and probes.

    ``context`` builds the service's typed context once the runtime is up
    (routes reach it through :func:`context_dependency`); ``produces_events``
    False runs no outbox relay. ``quiet_routes`` are ``(method, route
    template)`` pairs answered so often that an access-log line for each
    success would be most of the log and a noticeable share of CPU; their
    failures are still logged, and the request metrics count every call.
    """
    registry = CollectorRegistry()
    service_runtime: ServiceRuntime[Any] = ServiceRuntime(
        settings,
        tables=tables,
        produces_events=produces_events,
        register_consumers=register_consumers,
        context=context,
        registry=registry,
    )
    metrics = RequestMetrics(registry, service_runtime.process_name)
    # The gauge exists (0) before the first connection.
    service_runtime.nats_link  # noqa: B018

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service_runtime.configure_process()
        async with service_runtime.run() as runtime:
            # The one place the app holds the runtime; routes reach it (and the
            # service's context) through `runtime_of` / `context_dependency`.
            app.state.runtime = runtime
            app.state.database = runtime.database
            app.state.verifier = runtime.verifier
            app.state.roles = runtime.roles
            yield

    tracing = service_runtime.tracing_enabled()
    app = FastAPI(
        title=title,
        description=description,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        # A redirect to the path with(out) its slash would be built from the
        # request's Host header; a 404 problem is the honest answer.
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry asks the global providers on every request
        # whether to run; without an exporter the answer is always no.
        telemetry=None if tracing else {"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(CachePolicyMiddleware)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, quiet_routes=quiet_routes)
    if tracing:
        # Outermost, so the request span is current while the request id is set
        # and logged. No spans per ASGI receive/send message: they cost a third
        # of a small request's CPU and say nothing the request span does not.
        FastAPIInstrumentor.instrument_app(
            app,
            excluded_urls="healthz,readyz,metrics",
            server_request_hook=redact_span_hook,
            exclude_spans=["receive", "send"],
        )
    trust_forwarded_headers(app, settings.trusted_proxy_list)
    install_problem_handlers(app)
    install_problem_openapi(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False, response_model=None)
    async def readyz(request: Request) -> Response | dict[str, Any]:
        runtime = runtime_of(request)
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(runtime.database.ping(), 2)
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["database"] = f"error: {type(exc).__name__}"
        # NATS is a detail, not a condition: while it is away the outbox holds
        # events and the consumers reconnect, so the API can still serve.
        checks["nats"] = runtime.nats.state
        if checks["database"] == "ok":
            return {"status": "ready", "checks": checks}
        return problem_response(
            ServiceUnavailable("A dependency is not reachable.", extra={"checks": checks}), request
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


def trust_forwarded_headers(app: FastAPI, proxies: list[str]) -> None:
    """Take the client address and scheme from X-Forwarded-For/-Proto when, and
    only when, the peer is one of ``proxies``.

    Wrapped around the whole stack, tracing included, so rate limits, access
    logs and spans all see the same (real) client.
    """
    if not proxies:
        return
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        wrapped = ProxyHeadersMiddleware(build(), trusted_hosts=proxies)  # type: ignore[arg-type]
        return cast(ASGIApp, wrapped)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


def runtime_of(request: Request) -> Runtime[Any]:
    """The runtime of the app serving ``request``."""
    try:
        runtime: Runtime[Any] = request.app.state.runtime
    except AttributeError:
        raise RuntimeError("the app is used before its lifespan started") from None
    return runtime


async def _runtime_dependency(request: Request) -> Runtime[Any]:
    # async: FastAPI runs a plain `def` dependency in its thread pool.
    return runtime_of(request)


RuntimeDep = Annotated[Runtime[Any], Depends(_runtime_dependency)]


def settings_of(request: Request, cls: type[S]) -> S:
    """The settings of the app serving ``request``, as the service's own class."""
    settings = runtime_of(request).settings
    if not isinstance(settings, cls):
        raise TypeError(f"the settings are {type(settings).__name__}, not {cls.__name__}")
    return settings


def context_dependency(cls: type[C]) -> Callable[[Request], Awaitable[C]]:
    """A FastAPI dependency answering the service's typed context (of ``cls``);
    async, so no request waits for a thread hand-off."""

    async def dependency(request: Request) -> C:
        ctx = runtime_of(request).context
        if not isinstance(ctx, cls):
            raise TypeError(f"the service context is {type(ctx).__name__}, not {cls.__name__}")
        return ctx

    return dependency


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run an app's lifespan outside a server (CLI commands, tests)."""
    async with app.router.lifespan_context(app):
        yield app
