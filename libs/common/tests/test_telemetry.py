"""One trace from an HTTP request through the outbox, NATS and two consumers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Any, ClassVar

from fastapi import APIRouter
from opentelemetry.trace import SpanKind
from pydantic_settings import SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.app import create_service_app
from studio_common.consumer import EventConsumers
from studio_common.db import SessionDep
from studio_common.events import Envelope, EventPayload
from studio_common.outbox import enqueue
from studio_common.settings import ServiceSettings
from studio_common.testing.plugin import serve_app


class TraceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRACETEST_")


class PingSent(EventPayload):
    event_type: ClassVar[str] = "tracetest.ping.sent"
    word: str


class PongSent(EventPayload):
    event_type: ClassVar[str] = "tracetest.pong.sent"
    word: str


handler_log = logging.getLogger("tracetest.handlers")


async def test_one_trace_links_request_relay_and_consumers(
    service_settings: dict[str, Any], schema: Any, stream: Any, span_exporter: Any
) -> None:
    pongs: list[str] = []

    def register(consumers: EventConsumers) -> None:
        @consumers.on(PingSent)
        async def on_ping(event: PingSent, envelope: Envelope, session: AsyncSession) -> None:
            handler_log.info("ping handled")
            # An event emitted while handling one continues the same trace.
            await enqueue(session, schema.tables, PongSent(word=event.word))

        @consumers.on(PongSent)
        async def on_pong(event: PongSent, envelope: Envelope, session: AsyncSession) -> None:
            pongs.append(event.word)

    router = APIRouter()

    @router.post("/ping/{word}", status_code=202)
    async def ping(word: str, session: SessionDep) -> dict[str, str]:
        await enqueue(session, schema.tables, PingSent(word=word))
        return {}

    settings = TraceSettings(
        **{
            **service_settings,
            "event_subject_root": stream.subject_root,
            "event_stream": stream.stream,
            "log_json": True,
        }
    )
    app = create_service_app(
        settings, title="trace", routers=[router], tables=schema.tables, register_consumers=register
    )
    span_exporter.clear()
    async with serve_app(app) as client:
        buffer = capture_logs()
        assert (await client.post("/ping/hi")).status_code == 202
        deadline = time.monotonic() + 15
        while not pongs:
            assert time.monotonic() < deadline, "the event chain did not complete"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # let the last consumer span end

    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    server = next(s for s in spans.values() if s.kind == SpanKind.SERVER and "/ping/" in s.name)
    chain = [
        spans["tracetest.ping.sent publish"],
        spans["tracetest.ping.sent process"],
        spans["tracetest.pong.sent publish"],
        spans["tracetest.pong.sent process"],
    ]
    trace_id = server.context.trace_id
    assert all(s.context.trace_id == trace_id for s in chain)
    # Each hop is the child of the one before it.
    assert chain[0].kind == SpanKind.PRODUCER
    assert chain[1].kind == SpanKind.CONSUMER
    assert chain[1].parent.span_id == chain[0].context.span_id
    assert chain[2].parent.span_id == chain[1].context.span_id
    assert chain[3].parent.span_id == chain[2].context.span_id
    assert chain[1].attributes["messaging.system"] == "nats"

    lines = [json.loads(x) for x in buffer.getvalue().splitlines() if x.strip()]
    [handled] = [r for r in lines if r["message"] == "ping handled"]
    assert handled["trace_id"] == format(trace_id, "032x")
    assert handled["span_id"] == format(chain[1].context.span_id, "016x")
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_studio", False):
            root.removeHandler(h)


def test_redact_path_hides_credentials_but_keeps_ids() -> None:
    from studio_common.observability import redact_path

    episode = "0b6f1c7e-2f55-4a8e-9a57-3f1f5e1b2c3d"
    token = "1790000000.q9Xz2mD4mS3b6Qn1rX0aVbJc8kL5pT7wY2eH4uI9oP1"
    assert redact_path(f"/hls/{token}/{episode}/720p/seg_001.ts?sig=abc") == (
        f"/hls/[redacted]/{episode}/720p/seg_001.ts"
    )
    assert redact_path("/api/titles/the-last-summer-signal") == "/api/titles/the-last-summer-signal"


async def test_tokens_never_reach_logs_or_spans(
    service_settings: dict[str, Any], span_exporter: Any, test_issuer: Any
) -> None:
    secret = "1790000000.q9Xz2mD4mS3b6Qn1rX0aVbJc8kL5pT7wY2eH4uI9oP1"
    bearer = test_issuer.mint(role="admin")
    router = APIRouter()

    @router.get("/hls/{token}/{name}")
    async def segment(token: str, name: str) -> dict[str, str]:
        handler_log.info("serving a segment")
        return {"name": name}

    app = create_service_app(
        TraceSettings(**{**service_settings, "log_json": True, "run_outbox_relay": False}),
        title="redact",
        routers=[router],
    )
    span_exporter.clear()
    async with serve_app(app) as client:
        buffer = capture_logs()
        r = await client.get(
            f"/hls/{secret}/seg.ts",
            params={"sig": secret},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert r.status_code == 200
    logged = buffer.getvalue()
    assert "/hls/[redacted]/seg.ts" in logged
    assert secret not in logged
    assert bearer not in logged
    attributes = " ".join(
        str(v) for s in span_exporter.get_finished_spans() for v in s.attributes.values()
    )
    assert "seg.ts" in attributes  # the attributes were looked at, not absent
    assert secret not in attributes
    assert bearer not in attributes
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_studio", False):
            root.removeHandler(h)


async def test_sentry_reports_unhandled_errors_when_a_dsn_is_set(
    service_settings: dict[str, Any],
) -> None:
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import sentry_sdk

    from studio_common import telemetry

    received: list[bytes] = []

    class Sentry(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sentry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom-for-sentry")

    dsn = f"http://publickey@127.0.0.1:{server.server_port}/42"
    app = create_service_app(
        TraceSettings(**{**service_settings, "sentry_dsn": dsn, "run_outbox_relay": False}),
        title="sentry",
        routers=[router],
    )
    try:
        async with serve_app(app) as client:
            r = await client.get("/boom", headers={"Authorization": "Bearer not-to-be-sent"})
            assert r.status_code == 500
            sentry_sdk.flush(timeout=5)
        deadline = time.monotonic() + 5
        while not any(b"kaboom-for-sentry" in b for b in received):
            assert time.monotonic() < deadline, "no event reached the Sentry endpoint"
            await asyncio.sleep(0.05)
        leaked = [
            b[max(0, b.find(b"not-to-be-sent") - 300) : b.find(b"not-to-be-sent") + 50]
            for b in received
            if b"not-to-be-sent" in b
        ]
        assert not leaked, leaked
    finally:
        sentry_sdk.get_client().close()
        telemetry._sentry_enabled = False
        server.shutdown()
        server.server_close()
        root = logging.getLogger()
        for h in list(root.handlers):
            if getattr(h, "_studio", False):
                root.removeHandler(h)


async def test_sentry_is_off_without_a_dsn(monkeypatch: Any) -> None:
    from studio_common import telemetry

    monkeypatch.delenv("SENTRY_DSN", raising=False)
    assert telemetry.configure_sentry(None, environment="test", service="x") is False


def test_no_exporter_means_no_sdk_and_an_exporter_installs_one() -> None:
    import os
    import subprocess
    import sys

    code = (
        "from opentelemetry import trace\n"
        "from studio_common.telemetry import configure_tracing\n"
        "print(configure_tracing('x'), type(trace.get_tracer_provider()).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

    def run(**extra: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    # Nothing to export to: the no-op API stays, so hot paths pay nothing.
    assert run() == "False ProxyTracerProvider"
    assert run(OTEL_TRACES_EXPORTER="console") == "True TracerProvider"
    assert run(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318") == "True TracerProvider"


async def test_the_request_span_names_the_client_a_trusted_proxy_forwards(
    service_settings: dict[str, Any], span_exporter: Any
) -> None:
    router = APIRouter()

    @router.get("/where")
    async def where() -> dict[str, bool]:
        return {"ok": True}

    def peer_addresses(trusted: str) -> set[str]:
        return {
            str(s.attributes.get("client.address") or s.attributes.get("net.peer.ip"))
            for s in span_exporter.get_finished_spans()
            if s.kind is SpanKind.SERVER and s.attributes
        }

    for trusted, expected in (("127.0.0.1", "203.0.113.9"), ("", "127.0.0.1")):
        app = create_service_app(
            TraceSettings(
                **{**service_settings, "run_outbox_relay": False, "trusted_proxies": trusted}
            ),
            title="proxied",
            routers=[router],
        )
        span_exporter.clear()
        async with serve_app(app) as client:
            r = await client.get("/where", headers={"X-Forwarded-For": "203.0.113.9"})
            assert r.status_code == 200
        assert peer_addresses(trusted) == {expected}, trusted


def capture_logs() -> io.StringIO:
    """The process's log lines from now on (the handler the app configured)."""
    buffer = io.StringIO()
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_studio", False)]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    return buffer
