"""The service application factory shared by every HTTP service.

``create_service_app`` builds nothing at import time: the lifespan connects the
database, NATS (through a FastStream broker), the JWKS cache, starts the
outbox relay and the event consumers, and tears them down in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request, Response
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from studio_common.auth import JwksCache, JwtVerifier
from studio_common.caching import CachePolicyMiddleware
from studio_common.consumer import (
    EventConsumers,
    convert_bare_fetch_timeouts,
    harden_pull_fetch,
)
from studio_common.db import Database
from studio_common.errors import ServiceUnavailable, install_problem_handlers, problem_response
from studio_common.natsconn import NatsLink, connect_within
from studio_common.observability import (
    MessagingMetrics,
    RequestContextMiddleware,
    RequestMetrics,
    configure_logging,
    redact_span_hook,
)
from studio_common.openapi import install_problem_openapi
from studio_common.outbox import MessagingTables, OutboxRelay, ensure_stream
from studio_common.roles import start_role_projection
from studio_common.settings import ServiceSettings
from studio_common.tasks import stop_task
from studio_common.telemetry import configure_sentry, configure_tracing

log = logging.getLogger("studio.app")
NATS_DRAIN_TIMEOUT_SECONDS = 5


@dataclass
class Runtime:
    """What the lifespan built; reachable as ``app.state.runtime``."""

    settings: ServiceSettings
    database: Database
    broker: NatsBroker
    verifier: JwtVerifier
    nats: NatsLink | None = None
    relay: OutboxRelay | None = None
    consumers: EventConsumers | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def js(self) -> JetStreamContext:
        return self.broker.connection.jetstream()


ConsumerRegistration = Callable[[EventConsumers], None]
LifespanHook = Callable[[Runtime, AsyncExitStack], Any]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    tables: MessagingTables | None = None,
    register_consumers: ConsumerRegistration | None = None,
    on_startup: LifespanHook | None = None,
    description: str = "",
    quiet_routes: Collection[tuple[str, str]] = (),
) -> FastAPI:
    """The service's FastAPI app, with its lifespan, middleware and probes.

    ``quiet_routes`` are ``(method, route template)`` pairs answered so often
    that an access-log line for each success would be most of the log and a
    noticeable share of CPU; their failures are still logged, and the request
    metrics count every call.
    """
    service = settings.service_name
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry, service)
    messaging_metrics = MessagingMetrics(registry, service)
    nats_link = NatsLink(
        service, registry=registry, reconnect_max_seconds=settings.nats_reconnect_max_seconds
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service, settings.log_level, settings.log_json)
        settings.check_startup()
        configure_sentry(settings.sentry_dsn, environment=settings.environment, service=service)
        async with AsyncExitStack() as stack:
            database = Database.connect(
                settings.database_url,
                pool_size=settings.database_pool_size,
                echo=settings.database_echo,
            )
            stack.push_async_callback(database.dispose)
            broker_log = logging.getLogger(f"studio.{service}.broker")
            broker_log.addFilter(_quiet_reconnect_attempts)
            broker = NatsBroker(
                settings.nats_url,
                logger=broker_log,
                # "Received"/"Processed" for every message is debugging detail;
                # failures are still logged at their own level.
                log_level=logging.DEBUG,
                # nats-py waits up to this long for subscriptions to drain on
                # stop (30 s by default): a pull fetch cut off mid-flight can
                # leave one that never drains, and shutdown must end well
                # inside Kubernetes' 30 s grace period.
                drain_timeout=NATS_DRAIN_TIMEOUT_SECONDS,
                # Reconnect forever, with capped jittered backoff (ADR 1).
                **nats_link.options(),
            )
            jwks = JwksCache(
                settings.jwks_url,
                ttl_seconds=settings.jwks_cache_seconds,
                min_refetch_seconds=settings.jwks_min_refetch_seconds,
            )
            verifier = JwtVerifier(
                jwks,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_expected_audience,
                authorized_parties=settings.jwt_authorized_parties,
                role_claim=settings.jwt_role_claim,
                leeway_seconds=settings.jwt_leeway_seconds,
            )
            runtime = Runtime(
                settings=settings,
                database=database,
                broker=broker,
                verifier=verifier,
                nats=nats_link,
            )
            app.state.runtime = runtime
            app.state.database = database
            app.state.verifier = verifier
            app.state.metrics_registry = registry

            if tables is not None and register_consumers is not None and settings.run_consumers:
                runtime.consumers = EventConsumers(
                    broker,
                    database,
                    tables,
                    service=service,
                    stream=settings.event_stream,
                    subject_root=settings.event_subject_root,
                    max_deliver=settings.consumer_max_deliver,
                    metrics=messaging_metrics,
                )
                register_consumers(runtime.consumers)

            await connect_within(broker.connect(), settings.nats_startup_wait_seconds)
            nats_link.mark_connected()
            stack.push_async_callback(_stop_broker, broker, nats_link)
            await ensure_stream(runtime.js, settings.event_stream, settings.event_subject_root)
            convert_bare_fetch_timeouts()
            await broker.start()
            harden_pull_fetch(broker, nats_link)
            # Identity's current roles, loaded before the first request (ADR 7).
            app.state.roles, runtime.extras["role_bucket"] = await start_role_projection(
                runtime.js, settings.event_stream, stack
            )

            if tables is not None and settings.run_outbox_relay:
                runtime.relay = OutboxRelay(
                    database,
                    tables,
                    runtime.js,
                    subject_root=settings.event_subject_root,
                    stream=settings.event_stream,
                    poll_interval=settings.outbox_poll_interval,
                    metrics=messaging_metrics,
                    connected=lambda: nats_link.connected,
                )
                nats_link.on_reconnected(runtime.relay.wake)
                runtime.relay.start()
                stack.push_async_callback(runtime.relay.stop)
            if runtime.relay is not None or runtime.consumers is not None:
                refresher = asyncio.create_task(
                    _refresh_messaging_metrics(runtime, messaging_metrics),
                    name=f"{service}-messaging-metrics",
                )
                stack.push_async_callback(stop_task, refresher)
            if on_startup is not None:
                result = on_startup(runtime, stack)
                if asyncio.iscoroutine(result):
                    await result
            if settings.gc_freeze:
                # What is alive now lives as long as the process. Frozen, it is
                # no longer re-walked by every full collection, which otherwise
                # stalls all in-flight requests for ~100 ms about once a second
                # under load.
                gc.collect()
                gc.freeze()
            log.info("service started", extra={"service": service})
            yield
            log.info("service stopping", extra={"service": service})

    tracing = configure_tracing(service)
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
        runtime: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(runtime.database.ping(), 2)
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["database"] = f"error: {type(exc).__name__}"
        # NATS is a detail, not a condition: while it is away the outbox holds
        # events and the consumers reconnect, so the API can still serve.
        checks["nats"] = runtime.nats.state if runtime.nats is not None else "unknown"
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


async def _refresh_messaging_metrics(runtime: Runtime, metrics: MessagingMetrics) -> None:
    """Outbox lag and consumer pending counts, every ``metrics_refresh_seconds``."""
    failing = False
    while True:
        try:
            if runtime.relay is not None:
                metrics.set_lag(await runtime.relay.lag_seconds())
            if runtime.consumers is not None and (runtime.nats is None or runtime.nats.connected):
                await runtime.consumers.refresh_metrics()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Once per run of failures (the database or NATS away), not every refresh.
            if not failing:
                log.warning("could not refresh the messaging metrics: %r", exc)
            failing = True
        else:
            failing = False
        await asyncio.sleep(runtime.settings.metrics_refresh_seconds)


def _quiet_reconnect_attempts(record: logging.LogRecord) -> bool:
    """FastStream logs every failed reconnect attempt with a traceback; the
    NatsLink logs the outage once instead."""
    return not str(record.msg).startswith("Connection broken with")


async def _stop_broker(broker: NatsBroker, link: NatsLink) -> None:
    """Drain when connected; otherwise (nats-py refuses to drain while it
    reconnects) close, so a SIGTERM during an outage still ends the process."""
    link.mark_closing()
    try:
        await asyncio.wait_for(broker.stop(), NATS_DRAIN_TIMEOUT_SECONDS + 1)
    except Exception as exc:
        log.warning("NATS did not drain; closing the connection", extra={"error": repr(exc)})
        connection = getattr(broker, "_connection", None)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run an app's lifespan outside a server (CLI commands, tests)."""
    async with app.router.lifespan_context(app):
        yield app
