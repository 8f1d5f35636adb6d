from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import pytest
from fastapi import APIRouter, Depends, Request
from pydantic_settings import SettingsConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.app import Runtime, context_dependency, create_service_app, running
from studio_common.consumer import EventConsumers
from studio_common.db import SessionDep
from studio_common.errors import PROBLEM_CONTENT_TYPE, NotFound
from studio_common.events import Envelope, EventPayload
from studio_common.outbox import enqueue
from studio_common.settings import ServiceSettings
from studio_common.testing.infra import free_port
from studio_common.testing.plugin import serve_app


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMMONTEST_")


class PingSent(EventPayload):
    event_type: ClassVar[str] = "commontest.ping.sent"
    word: str


log = logging.getLogger("commontest.routes")
router = APIRouter()


@router.get("/things/{thing_id}")
async def get_thing(thing_id: int) -> dict[str, int]:
    log.info("looking at a thing", extra={"thing_id": thing_id})
    if thing_id == 0:
        raise NotFound("No thing 0.")
    return {"id": thing_id}


@router.get("/crash")
async def crash() -> None:
    raise RuntimeError("kaboom")


def settings_for(service_settings: dict[str, Any], **over: Any) -> DemoSettings:
    return DemoSettings(**{**service_settings, **over})


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The service's JSON log handler, pointed at a buffer once the lifespan installs it."""
    buffer = io.StringIO()
    yield buffer
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_studio", False):
            root.removeHandler(handler)


def capture(buffer: io.StringIO) -> None:
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_studio", False)]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_health_and_readiness(service_settings: dict[str, Any]) -> None:
    app = create_service_app(settings_for(service_settings), title="demo", routers=[router])
    async with serve_app(app) as client:
        resp = await client.get("/healthz")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ok"}

        resp = await client.get("/readyz")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ready", "checks": {"database": "ok", "nats": "ok"}}

        runtime: Runtime = app.state.runtime
        assert runtime.settings.service_name == "commontest"
        assert runtime.relay is None  # no tables given
        assert runtime.consumers is None


async def test_unreachable_database_starts_and_reports_503(
    service_settings: dict[str, Any], schema: Any
) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_service_app(
        settings_for(service_settings, database_url=dead),
        title="demo",
        routers=[router],
        tables=schema.tables,
        register_consumers=lambda consumers: None,
    )
    started = time.monotonic()
    async with serve_app(app) as client:
        assert time.monotonic() - started < 10
        assert (await client.get("/healthz")).status_code == 200
        resp = await client.get("/readyz")
        assert resp.status_code == 503
        assert resp.headers["content-type"] == PROBLEM_CONTENT_TYPE
        body = resp.json()
        assert body["type"] == "urn:studio:problem:unavailable"
        assert body["checks"]["nats"] == "ok"
        assert body["checks"]["database"].startswith("error")
        # Routes that need no database keep serving.
        assert (await client.get("/things/1")).status_code == 200


async def test_metrics_use_route_templates(service_settings: dict[str, Any]) -> None:
    inner = APIRouter(prefix="/v1")

    @inner.get("/shows/{slug}/episodes/{number}")
    async def episode(slug: str, number: int) -> dict[str, str]:
        return {"slug": slug}

    nested = APIRouter(prefix="/api")
    nested.include_router(inner)
    app = create_service_app(settings_for(service_settings), title="demo", routers=[router, nested])
    async with serve_app(app) as client:
        for thing in (1, 2, 3, 0):
            await client.get(f"/things/{thing}")
        assert (await client.get("/api/v1/shows/naruto/episodes/7")).status_code == 200
        assert (await client.post("/things/1")).status_code == 405
        await client.get("/no/such/path/42")
        await client.get("/crash")
        resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert "# TYPE http_server_request_duration_seconds histogram" in text
    labels = 'method="GET",route="/things/{thing_id}",service="commontest"'
    assert f'http_server_request_duration_seconds_count{{{labels},status_code="200"}} 3.0' in text
    assert f'http_server_request_duration_seconds_count{{{labels},status_code="404"}} 1.0' in text
    nested_labels = 'method="GET",route="/api/v1/shows/{slug}/episodes/{number}"'
    assert f"http_server_request_duration_seconds_count{{{nested_labels}," in text
    assert "naruto" not in text
    assert 'method="POST",route="/things/{thing_id}",service="commontest",status_code="405"' in text
    # Unknown paths collapse into one label instead of one series per URL.
    assert 'route="unmatched"' in text
    assert "/no/such/path/42" not in text
    assert 'http_server_errors_total{route="/crash",service="commontest"} 1.0' in text


async def test_request_id_echoed_when_sane_generated_otherwise(
    service_settings: dict[str, Any],
) -> None:
    app = create_service_app(settings_for(service_settings), title="demo", routers=[router])
    async with serve_app(app) as client:
        sane = "req-123_abc.def:9"
        resp = await client.get("/things/1", headers={"X-Request-ID": sane})
        assert resp.headers["x-request-id"] == sane

        generated = set()
        for bad in (None, "has spaces", "x" * 129, "new\u00e9line".encode("latin-1"), "<script>"):
            headers = {"X-Request-ID": bad} if bad is not None else {}
            rid = (await client.get("/things/1", headers=headers)).headers["x-request-id"]
            assert rid != bad
            assert len(rid) == 32
            int(rid, 16)
            generated.add(rid)
        assert len(generated) == 5

        # Problem responses carry it too.
        resp = await client.get("/things/0", headers={"X-Request-ID": "nf-1"})
        assert resp.status_code == 404
        assert resp.headers["x-request-id"] == "nf-1"


async def test_json_logs_carry_request_id(
    service_settings: dict[str, Any], captured_logs: io.StringIO
) -> None:
    app = create_service_app(
        settings_for(service_settings, log_json=True), title="demo", routers=[router]
    )
    async with serve_app(app) as client:
        capture(captured_logs)
        resp = await client.get("/things/7", headers={"X-Request-ID": "trace-me-7"})
        assert resp.status_code == 200
        resp = await client.get("/crash", headers={"X-Request-ID": "trace-crash"})

    assert resp.status_code == 500
    assert resp.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert resp.json()["type"] == "urn:studio:problem:internal"
    assert resp.headers["x-request-id"] == "trace-crash"

    lines = json_lines(captured_logs)
    [own] = [r for r in lines if r["message"] == "looking at a thing"]
    assert own["request_id"] == "trace-me-7"
    assert own["thing_id"] == 7
    assert own["service"] == "commontest"
    assert own["level"] == "INFO"
    assert own["logger"] == "commontest.routes"
    assert "time" in own
    access = [r for r in lines if r["message"] == "request" and r.get("path") == "/things/7"]
    assert access
    assert access[0]["request_id"] == "trace-me-7"
    assert access[0]["route"] == "/things/{thing_id}"
    assert access[0]["status"] == 200
    # The traceback of a crash is the line that most needs the request id.
    [error] = [r for r in lines if r["message"] == "unhandled error"]
    assert error["request_id"] == "trace-crash"
    assert "kaboom" in error["exc_info"]
    # Outside a request there is no request id.
    assert all("request_id" not in r for r in lines if r["message"] == "service stopping")


async def test_quiet_routes_log_only_their_failures(
    service_settings: dict[str, Any], captured_logs: io.StringIO
) -> None:
    app = create_service_app(
        settings_for(service_settings, log_json=True),
        title="demo",
        routers=[router],
        quiet_routes={("GET", "/things/{thing_id}")},
    )
    async with serve_app(app) as client:
        capture(captured_logs)
        assert (await client.get("/things/7")).status_code == 200
        assert (await client.get("/things/0")).status_code == 404
        assert (await client.get("/crash")).status_code == 500
        metrics = (await client.get("/metrics")).text

    access = [r for r in json_lines(captured_logs) if r["message"] == "request"]
    assert [(r["path"], r["status"]) for r in access] == [("/things/0", 404), ("/crash", 500)]
    # Unlogged is not uncounted.
    assert (
        'method="GET",route="/things/{thing_id}",service="commontest",status_code="200"' in metrics
    )


async def test_outbox_relay_and_consumers_run_in_the_app(
    service_settings: dict[str, Any], schema: Any, stream: Any, db: Any
) -> None:
    received: list[str] = []

    def register(consumers: EventConsumers) -> None:
        @consumers.on(PingSent)
        async def on_ping(event: PingSent, envelope: Envelope, session: AsyncSession) -> None:
            received.append(event.word)

    ping_router = APIRouter()

    @ping_router.post("/ping/{word}", status_code=202)
    async def ping(word: str, session: SessionDep) -> dict[str, str]:
        env = await enqueue(session, schema.tables, PingSent(word=word))
        return {"id": str(env.id)}

    settings = settings_for(
        service_settings,
        event_subject_root=stream.subject_root,
        event_stream=stream.stream,
        outbox_poll_interval=5,
    )
    app = create_service_app(
        settings,
        title="demo",
        routers=[ping_router],
        tables=schema.tables,
        register_consumers=register,
    )
    async with serve_app(app) as client:
        runtime: Runtime = app.state.runtime
        assert runtime.relay is not None
        assert runtime.consumers is not None
        assert (await client.post("/ping/hello")).status_code == 202
        deadline = time.monotonic() + 10
        while not received:
            assert time.monotonic() < deadline, "the event did not make the round trip"
            await asyncio.sleep(0.05)
    assert received == ["hello"]
    outbox = schema.tables.outbox
    async with db.engine.connect() as conn:
        [published_at] = (await conn.execute(select(outbox.c.published_at))).scalars()
    assert published_at is not None


@dataclass
class DemoContext:
    token: str
    closed: list[bool]


async def test_running_helper_and_typed_context(service_settings: dict[str, Any]) -> None:
    seen: list[Runtime[Any]] = []
    closed: list[bool] = []

    async def context(runtime: Runtime[Any], stack: AsyncExitStack) -> DemoContext:
        seen.append(runtime)
        stack.callback(closed.append, True)
        return DemoContext(uuid.uuid4().hex, closed)

    router = APIRouter()

    @router.get("/token")
    async def token(
        ctx: Annotated[DemoContext, Depends(context_dependency(DemoContext))],
    ) -> dict[str, str]:
        return {"token": ctx.token}

    app = create_service_app(
        settings_for(service_settings, run_outbox_relay=False),
        title="demo",
        routers=[router],
        context=context,
    )
    async with serve_app(app) as client:
        runtime: Runtime[DemoContext] = app.state.runtime
        assert seen == [runtime]
        assert (await client.get("/token")).json() == {"token": runtime.context.token}
        await runtime.database.ping()
        await runtime.connection.flush(1)
        assert closed == []
    # What the context started is stopped with the process.
    assert closed == [True]


async def test_running_helper(service_settings: dict[str, Any]) -> None:
    app = create_service_app(settings_for(service_settings, run_outbox_relay=False), title="demo")
    async with running(app) as a:
        runtime: Runtime[Any] = a.state.runtime
        await runtime.database.ping()
        await runtime.connection.flush(1)


async def test_request_state_reaches_handlers(service_settings: dict[str, Any]) -> None:
    r = APIRouter()

    @r.get("/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        runtime: Runtime = request.app.state.runtime
        return {"service": runtime.settings.service_name}

    app = create_service_app(settings_for(service_settings), title="demo", routers=[r])
    async with serve_app(app) as client:
        assert (await client.get("/whoami")).json() == {"service": "commontest"}


async def test_shutdown_ends_when_a_subscription_cannot_drain(
    service_settings: dict[str, Any],
) -> None:
    # A message left in a subscription nobody reads (what a pull fetch cut off
    # by stop can leave behind) never drains; nats-py would wait 30 s for it,
    # as long as a pod's whole grace period.
    app = create_service_app(settings_for(service_settings), title="demo")
    lifespan = running(app)
    await lifespan.__aenter__()
    runtime: Runtime = app.state.runtime
    nc = runtime.connection
    subject = f"commontest.undrained.{uuid.uuid4().hex}"
    await nc.subscribe(subject)
    await nc.publish(subject, b"never read")
    await nc.flush()
    # nats-py swallows a cancelled drain, so a timeout around the exit would
    # pass either way: the bound is checked on the clock instead.
    started = time.monotonic()
    await lifespan.__aexit__(None, None, None)
    assert time.monotonic() - started < 20, "shutdown waited out nats-py's drain"
    assert nc.is_closed


async def test_startup_freezes_what_is_alive_unless_told_not_to(
    service_settings: dict[str, Any],
) -> None:
    gc.unfreeze()
    try:
        async with running(create_service_app(settings_for(service_settings), title="demo")):
            assert gc.get_freeze_count() == 0
        frozen = settings_for(service_settings, gc_freeze=True)
        async with running(create_service_app(frozen, title="demo")):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
