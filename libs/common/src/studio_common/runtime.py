"""The process runtime every service and worker is built on, framework-neutral.

:class:`ServiceRuntime` describes what a process needs (settings, its
messaging tables, whether it produces events, its event consumers, whether it
verifies tokens) and :meth:`ServiceRuntime.run` builds it: the database, one
NATS connection (nats-py, ADR 10, kept alive by
:class:`~studio_common.natsconn.NatsLink`), the JWT verifier and identity's
role projection, the outbox relay (only where the process produces events),
the event consumers and the messaging metrics. It tears them down in reverse
order. Nothing here knows about HTTP: :func:`studio_common.app.create_service_app`
is a thin FastAPI adapter over it and a worker runs it directly.

A process's own resources (clients, caches, background tasks) live in a typed
context: a dataclass the service defines and its ``context`` factory builds
once the runtime is up; handlers and routes reach it as ``runtime.context``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from studio_common.auth import JwksCache, JwtVerifier, RoleSource, TokenVerifier
from studio_common.consumer import EventConsumers
from studio_common.db import Database
from studio_common.natsconn import NatsLink, connect_within
from studio_common.observability import MessagingMetrics, configure_logging
from studio_common.outbox import MessagingTables, OutboxRelay, ensure_stream
from studio_common.roles import start_role_projection
from studio_common.settings import ServiceSettings
from studio_common.tasks import run_in_background
from studio_common.telemetry import configure_sentry, configure_tracing

log = logging.getLogger("studio.runtime")
NATS_DRAIN_TIMEOUT_SECONDS = 5

C = TypeVar("C")
S = TypeVar("S", bound=ServiceSettings)


class NotStarted(RuntimeError):
    """A part of the runtime was used before the process built it."""


@dataclass
class Runtime(Generic[C]):
    """What :meth:`ServiceRuntime.run` built for one process.

    ``context`` is the service's own typed context (None for a service without
    one); ``verifier`` and ``roles`` exist where the process verifies tokens.
    """

    name: str
    settings: ServiceSettings
    database: Database
    connection: NatsClient
    nats: NatsLink
    registry: CollectorRegistry
    messaging_metrics: MessagingMetrics
    verifier: TokenVerifier | None = None
    roles: RoleSource | None = None
    role_bucket: KeyValue | None = None
    relay: OutboxRelay | None = None
    consumers: EventConsumers | None = None
    _context: C | None = field(default=None, repr=False)

    @property
    def context(self) -> C:
        if self._context is None:
            raise NotStarted(f"{self.name}: the service context is used before it was built")
        return self._context

    @property
    def js(self) -> JetStreamContext:
        return self.connection.jetstream()

    def require_verifier(self) -> TokenVerifier:
        if self.verifier is None:
            raise NotStarted(f"{self.name} does not verify tokens")
        return self.verifier


ConsumerRegistration = Callable[[EventConsumers], None]
# Builds the service's context once the runtime is up; what it starts it
# registers on the stack, which closes it before the runtime's own parts.
ContextFactory = Callable[[Runtime[Any], AsyncExitStack], "Awaitable[C] | C"]


@dataclass
class ServiceRuntime(Generic[C]):
    """How to build one process. ``name`` defaults to the settings' service name;
    a second process of a service (a worker) names itself, which labels its
    metrics, logs and traces.

    ``produces_events`` starts the outbox relay over ``tables`` (a process that
    never enqueues an event runs none); ``register_consumers`` subscribes the
    event handlers; ``verify_tokens`` builds the JWT verifier and the role
    projection (an HTTP service; a worker has no callers to verify).
    """

    settings: ServiceSettings
    name: str | None = None
    tables: MessagingTables | None = None
    produces_events: bool = True
    register_consumers: ConsumerRegistration | None = None
    verify_tokens: bool = True
    context: ContextFactory[C] | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    pool_size: int | None = None
    _link: NatsLink | None = field(default=None, init=False, repr=False)
    _messaging_metrics: MessagingMetrics | None = field(default=None, init=False, repr=False)

    @property
    def process_name(self) -> str:
        return self.name or self.settings.service_name

    @property
    def nats_link(self) -> NatsLink:
        """Made once, before the process connects: the gauge answers from the start."""
        if self._link is None:
            self._link = NatsLink(
                self.process_name,
                registry=self.registry,
                reconnect_max_seconds=self.settings.nats_reconnect_max_seconds,
            )
        return self._link

    @property
    def messaging_metrics(self) -> MessagingMetrics:
        if self._messaging_metrics is None:
            self._messaging_metrics = MessagingMetrics(self.registry, self.process_name)
        return self._messaging_metrics

    def tracing_enabled(self) -> bool:
        """Installs the process's tracer provider (once); True if spans are recorded."""
        return configure_tracing(self.process_name)

    def configure_process(self) -> bool:
        """Logging, error reporting and tracing of the process; True if tracing exports."""
        s = self.settings
        configure_logging(self.process_name, s.log_level, s.log_json)
        configure_sentry(s.sentry_dsn, environment=s.environment, service=self.process_name)
        return self.tracing_enabled()

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Runtime[C]]:
        s = self.settings
        name = self.process_name
        if self.verify_tokens:
            # The settings a process serving callers cannot start without
            # (the token audience ...); a worker has no callers.
            s.check_startup()
        link = self.nats_link
        metrics = self.messaging_metrics
        async with AsyncExitStack() as stack:
            database = Database.connect(
                s.database_url,
                pool_size=self.pool_size or s.database_pool_size,
                max_overflow=self.pool_size or s.database_max_overflow,
                read_pool_size=self.pool_size or s.database_read_pool_size,
                echo=s.database_echo,
            )
            stack.push_async_callback(database.dispose)
            connection = await connect_within(
                nats.connect(
                    s.nats_url,
                    name=f"studio-{name}",
                    # nats-py waits up to this long for subscriptions to drain on
                    # close (30 s by default): a pull fetch cut off mid-flight can
                    # leave one that never drains, and shutdown must end well
                    # inside Kubernetes' 30 s grace period.
                    drain_timeout=NATS_DRAIN_TIMEOUT_SECONDS,
                    # Reconnect forever, with capped jittered backoff (ADR 1).
                    **link.options(),
                ),
                s.nats_startup_wait_seconds,
            )
            link.mark_connected()
            stack.push_async_callback(close_connection, connection, link)
            runtime: Runtime[C] = Runtime(
                name=name,
                settings=s,
                database=database,
                connection=connection,
                nats=link,
                registry=self.registry,
                messaging_metrics=metrics,
                verifier=_verifier(s) if self.verify_tokens else None,
            )
            await ensure_stream(
                runtime.js, s.event_stream, s.event_subject_root, s.nats_stream_replicas
            )
            if self.tables is not None and self.register_consumers is not None and s.run_consumers:
                runtime.consumers = EventConsumers(
                    connection,
                    database,
                    self.tables,
                    service=name,
                    stream=s.event_stream,
                    subject_root=s.event_subject_root,
                    max_deliver=s.consumer_max_deliver,
                    metrics=metrics,
                    link=link,
                )
                self.register_consumers(runtime.consumers)
                await runtime.consumers.start()
                # Stopped before the connection closes.
                stack.push_async_callback(runtime.consumers.stop)
            if self.verify_tokens:
                # Identity's current roles, loaded before the first request (ADR 7).
                runtime.roles, runtime.role_bucket = await start_role_projection(
                    runtime.js, s.event_stream, stack
                )

            if self.tables is not None and self.produces_events and s.run_outbox_relay:
                runtime.relay = OutboxRelay(
                    database,
                    self.tables,
                    runtime.js,
                    subject_root=s.event_subject_root,
                    stream=s.event_stream,
                    poll_interval=s.outbox_poll_interval,
                    metrics=metrics,
                    connected=lambda: link.connected,
                )
                link.on_reconnected(runtime.relay.wake)
                runtime.relay.start()
                stack.push_async_callback(runtime.relay.stop)
            if runtime.relay is not None or runtime.consumers is not None:
                run_in_background(
                    stack,
                    _refresh_messaging_metrics(runtime, metrics),
                    f"{name}-messaging-metrics",
                )
            if self.context is not None:
                built = self.context(runtime, stack)
                runtime._context = cast(C, await built if inspect.isawaitable(built) else built)
            if s.gc_freeze:
                # What is alive now lives as long as the process. Frozen, it is
                # no longer re-walked by every full collection, which otherwise
                # stalls all in-flight requests for ~100 ms about once a second
                # under load.
                gc.collect()
                gc.freeze()
            log.info("process started", extra={"service": name})
            yield runtime
            log.info("process stopping", extra={"service": name})


def _verifier(s: ServiceSettings) -> JwtVerifier:
    jwks = JwksCache(
        s.jwks_url,
        ttl_seconds=s.jwks_cache_seconds,
        min_refetch_seconds=s.jwks_min_refetch_seconds,
    )
    return JwtVerifier(
        jwks,
        issuer=s.jwt_issuer,
        audience=s.jwt_expected_audience,
        authorized_parties=s.jwt_authorized_parties,
        role_claim=s.jwt_role_claim,
        leeway_seconds=s.jwt_leeway_seconds,
    )


async def _refresh_messaging_metrics(runtime: Runtime[Any], metrics: MessagingMetrics) -> None:
    """Outbox lag and consumer pending counts, every ``metrics_refresh_seconds``."""
    failing = False
    while True:
        try:
            if runtime.relay is not None:
                metrics.set_lag(await runtime.relay.lag_seconds())
            if runtime.consumers is not None and runtime.nats.connected:
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


async def close_connection(connection: NatsClient, link: NatsLink) -> None:
    """Drain when connected; otherwise (nats-py refuses to drain while it
    reconnects) close, so a SIGTERM during an outage still ends the process."""
    link.mark_closing()
    try:
        await asyncio.wait_for(connection.drain(), NATS_DRAIN_TIMEOUT_SECONDS + 1)
    except Exception as exc:
        log.warning("NATS did not drain; closing the connection", extra={"error": repr(exc)})
    if not connection.is_closed:
        with contextlib.suppress(Exception):
            await connection.close()
