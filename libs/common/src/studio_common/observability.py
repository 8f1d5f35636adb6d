"""JSON logs carrying a request id, and Prometheus request metrics."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from collections.abc import Collection
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio_common.errors import ProblemError, problem_response
from studio_common.redaction import REDACTED, redact_path, redact_url
from studio_common.telemetry import report_exception, trace_ids

__all__ = ["REDACTED", "redact_path", "redact_url"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

error_log = logging.getLogger("studio.errors")

REQUEST_ID_HEADER = "x-request-id"


def redact_span_hook(span: Any, scope: dict[str, Any]) -> None:
    """OpenTelemetry server-request hook: the same redaction for span attributes."""
    attributes = getattr(span, "attributes", None) or {}
    for key in ("http.target", "url.path"):
        value = attributes.get(key)
        if isinstance(value, str):
            span.set_attribute(key, redact_path(value))
    for key in ("http.url", "url.full"):
        value = attributes.get(key)
        if isinstance(value, str):
            span.set_attribute(key, redact_url(value))
    if "url.query" in attributes:
        span.set_attribute("url.query", REDACTED)


_SAFE_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        rid = request_id_var.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        ids = trace_ids()
        if ids is not None and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = ids
        return True


def configure_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_studio", False):
            root.removeHandler(old)
    handler._studio = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # HTTP client libraries log full request URLs at INFO: presigned query
    # strings and tokens must not end up in the logs.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP requests, by route template.",
            ["service", "method", "route", "status_code"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.errors = Counter(
            "http_server_errors_total",
            "Responses with a 5xx status.",
            ["service", "route"],
            registry=registry,
        )
        self.service = service


class MessagingMetrics:
    """The outbox and the event consumers of one process (names in deploy/grafana)."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.outbox_lag = Gauge(
            "outbox_lag_seconds",
            "Age of the oldest unpublished outbox row (0 when none waits).",
            ["service"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "outbox_events_published_total",
            "Outbox rows the relay published to JetStream, by event type.",
            ["service", "event_type"],
            registry=registry,
        )
        self.consumer_pending = Gauge(
            "consumer_pending_messages",
            "Messages on the stream not yet delivered to the durable consumer.",
            ["service", "consumer"],
            registry=registry,
        )
        self.consumer_ack_pending = Gauge(
            "consumer_ack_pending_messages",
            "Messages delivered to the durable consumer and not acknowledged yet.",
            ["service", "consumer"],
            registry=registry,
        )
        self.consumer_skipped_versions = Counter(
            "consumer_skipped_versions_total",
            "Events a consumer acked unhandled: a version of the event it does not handle.",
            ["service", "consumer", "version"],
            registry=registry,
        )
        self.consumer_dead_letters = Counter(
            "consumer_dead_letters_total",
            "Messages a consumer parked on the dead-letter subject.",
            ["service", "consumer"],
            registry=registry,
        )

    def skipped_version(self, consumer: str, version: int) -> None:
        self.consumer_skipped_versions.labels(self.service, consumer, str(version)).inc()

    def published(self, event_type: str) -> None:
        self.outbox_published.labels(self.service, event_type).inc()

    def set_lag(self, seconds: float) -> None:
        self.outbox_lag.labels(self.service).set(max(0.0, seconds))

    def set_pending(self, consumer: str, pending: int, ack_pending: int) -> None:
        self.consumer_pending.labels(self.service, consumer).set(pending)
        self.consumer_ack_pending.labels(self.service, consumer).set(ack_pending)

    def dead_lettered(self, consumer: str) -> None:
        self.consumer_dead_letters.labels(self.service, consumer).inc()


def _route_template(scope: Scope) -> str:
    """The template of the route that handled the request, read after routing.

    FastAPI includes routers lazily: the matched ``APIRoute`` knows only its own
    router's prefix, the effective context of the inclusion has the full path.
    """
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        path = getattr(context, "path_format", None)
        if isinstance(path, str) and path:
            return path
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class RequestContextMiddleware:
    """Assigns a request id (or keeps a sane incoming one) and records metrics."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        quiet_routes: Collection[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("studio.access")
        # (method, route template): successes are counted but not logged.
        self.quiet = frozenset(quiet_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER.encode():
                incoming = value.decode("latin-1")
                break
        rid = (
            incoming
            if incoming and len(incoming) <= 128 and set(incoming) <= _SAFE_ID_CHARS
            else uuid.uuid4().hex
        )
        token = request_id_var.set(rid)
        status = 500
        started = False
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if started:
                raise
            # Answered here rather than by Starlette's outermost error middleware,
            # so the traceback is logged with the request id and the 500 carries
            # the X-Request-ID header like every other response.
            error_log.exception("unhandled error")
            report_exception(sys.exc_info()[1] or RuntimeError("unhandled error"))
            response = problem_response(
                ProblemError("An unexpected error occurred."), Request(scope)
            )
            await response(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            self.metrics.duration.labels(
                self.metrics.service, scope["method"], route, str(status)
            ).observe(elapsed)
            if status >= 500:
                self.metrics.errors.labels(self.metrics.service, route).inc()
            if route not in ("/healthz", "/readyz", "/metrics") and (
                status >= 400 or (scope["method"], route) not in self.quiet
            ):
                extra: dict[str, Any] = {
                    "method": scope["method"],
                    "path": redact_path(scope["path"]),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    # After the trusted-proxy rewrite: the viewer, not the ingress.
                    "client": (scope.get("client") or ("",))[0],
                }
                self.log.info("request", extra=extra)
            request_id_var.reset(token)
