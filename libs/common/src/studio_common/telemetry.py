"""Tracing across HTTP and NATS, and error reporting.

Traces: OpenTelemetry with W3C trace context. HTTP requests are spans from the
FastAPI instrumentation; the outbox stores the context of the transaction that
wrote an event, the relay publishes in a PRODUCER span that continues it and
puts ``traceparent`` into the message headers, and the consumer runs its
handler in a CONSUMER span under that. So one trace links an API call, the
relay, the worker that consumes the event and whatever that worker emits.

Exporters follow the standard variables: ``OTEL_TRACES_EXPORTER`` (otlp,
console or none; otlp when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set), the
``OTEL_EXPORTER_OTLP_*`` family, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``.

Errors: Sentry when ``SENTRY_DSN`` (or the service setting) is set, off otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Span, SpanKind

from studio_common.redaction import redact_url

log = logging.getLogger("studio.telemetry")

_sentry_enabled = False


def configure_tracing(service: str) -> bool:
    """Install the process's tracer provider once; returns whether spans are recorded.

    Without an exporter no SDK is installed: the API's no-op tracer still
    carries incoming trace context along, at no cost on hot paths. Sampling
    follows ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``. A provider
    installed earlier (tests install one with an in-memory exporter) is kept.
    """
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return True
    otlp_configured = bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    exporter = (
        os.environ.get("OTEL_TRACES_EXPORTER", "otlp" if otlp_configured else "none")
        .strip()
        .lower()
    )
    if exporter not in ("otlp", "console"):
        return False
    resource = Resource.create({"service.name": f"studio-{service}", "service.namespace": "studio"})
    provider = TracerProvider(resource=resource)
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def tracer(service: str) -> trace.Tracer:
    return trace.get_tracer(f"studio.{service}")


def current_trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, for a message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def message_span(
    name: str,
    headers: Mapping[str, Any] | None,
    *,
    kind: SpanKind,
    attributes: Mapping[str, Any] | None = None,
    service: str = "messaging",
) -> Iterator[Span]:
    """A span continuing the trace carried in ``headers``."""
    parent = propagate.extract({k: str(v) for k, v in (headers or {}).items()})
    with tracer(service).start_as_current_span(
        name, context=parent, kind=kind, attributes=dict(attributes or {})
    ) as span:
        yield span


def trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, hex, for log lines."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def configure_sentry(dsn: str | None, *, environment: str, service: str) -> bool:
    """Start Sentry when a DSN is given; returns whether it is on."""
    global _sentry_enabled
    dsn = dsn or os.environ.get("SENTRY_DSN")
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        server_name=f"studio-{service}",
        traces_sample_rate=0.0,
        before_send=_scrub_event,
        # Frame locals hold ASGI scopes, headers and tokens.
        include_local_variables=False,
    )
    sentry_sdk.set_tag("service", service)
    _sentry_enabled = True
    return True


def _scrub_event(event: Any, hint: Any) -> Any:
    """No credentials leave the service: drop headers, cookies, query and body,
    and redact token-like path segments (playback URLs carry tokens in the path)."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("headers", "cookies", "query_string", "data", "env"):
            request.pop(key, None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = redact_url(url)
    return event


def report_exception(exc: BaseException) -> None:
    if _sentry_enabled:
        import sentry_sdk

        sentry_sdk.capture_exception(exc)
