from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    insert,
    literal,
    select,
    text,
)

from studio_common.db import Database, DriverQuery, SessionDep, service_metadata
from studio_common.errors import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    database_unavailable,
    install_problem_handlers,
    problem_type,
)
from studio_common.testing.plugin import serve_app


class TeapotError(ProblemError):
    status, slug, title = 418, "teapot", "I am a teapot"


class Item(BaseModel):
    name: str = Field(min_length=2)
    count: int


def build_app(db: Database, schema: str) -> tuple[FastAPI, Table]:
    metadata = service_metadata(schema)
    things = Table(
        "things",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("slug", String(20), nullable=False, unique=True),
        Column("parent_id", Integer, ForeignKey("things.id")),
    )
    # Checked at COMMIT only: proves the request's transaction commits before
    # the response goes out.
    Table(
        "late",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("code", String(20), nullable=False),
        UniqueConstraint("code", deferrable=True, initially="DEFERRED"),
    )
    late = metadata.tables[f"{schema}.late"]

    app = FastAPI()
    app.state.database = db
    install_problem_handlers(app)

    problems: dict[str, ProblemError] = {
        "bad-request": BadRequest("The slug is odd."),
        "unauthorized": Unauthorized("The token has expired."),
        "unauthorized-bare": Unauthorized(),
        "forbidden": Forbidden("Editors only."),
        "not-found": NotFound("No title 'x'."),
        "conflict": Conflict("Slug taken.", extra={"slug": "x"}),
        "too-large": PayloadTooLarge("Max 1 MiB."),
        "rate-limited": TooManyRequests("Slow down.", retry_after=7),
        "unavailable": ServiceUnavailable("Down."),
        "teapot": TeapotError("Short and stout."),
    }

    @app.get("/problems/{name}")
    async def raise_problem(name: str) -> None:
        raise problems[name]

    @app.get("/http/{status}")
    async def raise_http(status: int) -> None:
        raise HTTPException(status, detail=f"plain {status}")

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals")

    @app.post("/things/{slug}")
    async def add_thing(
        slug: str, session: SessionDep, parent: int | None = None
    ) -> dict[str, str]:
        await session.execute(insert(things).values(slug=slug, parent_id=parent))
        return {"slug": slug}

    @app.post("/late/{code}")
    async def add_late(code: str, session: SessionDep) -> dict[str, str]:
        await session.execute(insert(late).values(code=code))
        return {"code": code}

    @app.post("/late-then-fail/{code}")
    async def add_late_then_fail(code: str, session: SessionDep) -> None:
        await session.execute(insert(late).values(code=code))
        raise Conflict("changed my mind")

    @app.post("/terminate")
    async def terminate(session: SessionDep) -> None:
        await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    echo = DriverQuery.compile(select(bindparam("word", type_=String).label("word")))
    divide = DriverQuery.compile(select(literal(1) // bindparam("by", type_=Integer)))

    @app.get("/driver/echo")
    async def driver_echo(word: str) -> dict[str, str]:
        [row] = await db.read(lambda conn: echo.fetch(conn, word=word))
        return {"word": row["word"]}

    @app.get("/driver/divide")
    async def driver_divide(by: int) -> dict[str, int]:
        return {"result": await db.read(lambda conn: divide.fetchval(conn, by=by))}

    app.state.metadata = metadata
    app.state.late = late
    return app, things


@pytest.fixture
async def client(db: Database, schema_name: str) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = build_app(db, schema_name)
    async with db.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema_name}"'))
        await conn.run_sync(app.state.metadata.create_all)
    async with serve_app(app) as c:
        c.app_state = app.state  # type: ignore[attr-defined]
        yield c
    async with db.engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = resp.json()
    assert body["type"] == problem_type(slug) == f"urn:studio:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["instance"] == resp.request.url.path
    return body


@pytest.mark.parametrize(
    ("name", "status", "slug", "title", "detail"),
    [
        ("bad-request", 400, "bad-request", "Bad request", "The slug is odd."),
        ("unauthorized", 401, "unauthorized", "Authentication required", "The token has expired."),
        ("forbidden", 403, "forbidden", "Forbidden", "Editors only."),
        ("not-found", 404, "not-found", "Not found", "No title 'x'."),
        ("conflict", 409, "conflict", "Conflict", "Slug taken."),
        ("too-large", 413, "payload-too-large", "Payload too large", "Max 1 MiB."),
        ("rate-limited", 429, "rate-limited", "Too many requests", "Slow down."),
        ("unavailable", 503, "unavailable", "Service unavailable", "Down."),
        ("teapot", 418, "teapot", "I am a teapot", "Short and stout."),
    ],
)
async def test_problem_errors_render_problem_json(
    client: httpx.AsyncClient, name: str, status: int, slug: str, title: str, detail: str
) -> None:
    resp = await client.get(f"/problems/{name}")
    body = assert_problem(resp, status, slug)
    assert body["title"] == title
    assert body["detail"] == detail
    assert body["instance"] == f"/problems/{name}"


async def test_extra_members_are_merged(client: httpx.AsyncClient) -> None:
    body = (await client.get("/problems/conflict")).json()
    assert body["slug"] == "x"


async def test_unauthorized_carries_www_authenticate(client: httpx.AsyncClient) -> None:
    resp = await client.get("/problems/unauthorized")
    assert_problem(resp, 401, "unauthorized")
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge

    bare = await client.get("/problems/unauthorized-bare")
    body = assert_problem(bare, 401, "unauthorized")
    assert "detail" not in body
    assert bare.headers["www-authenticate"] == 'Bearer realm="studio"'


async def test_rate_limited_carries_retry_after(client: httpx.AsyncClient) -> None:
    resp = await client.get("/problems/rate-limited")
    assert_problem(resp, 429, "rate-limited")
    assert resp.headers["retry-after"] == "7"


def test_retry_after_is_at_least_one_second() -> None:
    assert TooManyRequests(retry_after=0).headers["Retry-After"] == "1"


async def test_request_validation_is_422_with_errors(client: httpx.AsyncClient) -> None:
    resp = await client.post("/items", json={"name": "x", "count": "many"})
    body = assert_problem(resp, 422, "validation")
    pointers = {e["pointer"]: e for e in body["errors"]}
    assert set(pointers) == {"body.name", "body.count"}
    assert pointers["body.count"]["code"] == "int_parsing"
    assert all(e["message"] for e in body["errors"])

    resp = await client.get("/items/not-a-number")
    body = assert_problem(resp, 422, "validation")
    assert [e["pointer"] for e in body["errors"]] == ["path.item_id"]


async def test_malformed_json_body_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(resp, 422, "validation")


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/nowhere")
    assert_problem(resp, 404, "not-found")


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/items")
    assert_problem(resp, 405, "method-not-allowed")
    assert "POST" in resp.headers["allow"]


@pytest.mark.parametrize(
    ("status", "slug"),
    [(400, "bad-request"), (404, "not-found"), (409, "conflict"), (418, "http-418")],
)
async def test_http_exception_becomes_problem(
    client: httpx.AsyncClient, status: int, slug: str
) -> None:
    resp = await client.get(f"/http/{status}")
    body = assert_problem(resp, status, slug)
    assert body["detail"] == f"plain {status}"


async def test_http_exception_429_becomes_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/http/429")
    body = assert_problem(resp, 429, "rate-limited")
    assert body["detail"] == "plain 429"
    assert int(resp.headers["retry-after"]) >= 1


async def test_unique_violation_is_409_with_constraint(client: httpx.AsyncClient) -> None:
    assert (await client.post("/things/alpha")).status_code == 200
    resp = await client.post("/things/alpha")
    body = assert_problem(resp, 409, "conflict")
    assert body["constraint"] == "uq_things_slug"
    assert "already exists" in body["detail"]


async def test_foreign_key_violation_is_409(client: httpx.AsyncClient) -> None:
    resp = await client.post("/things/orphan", params={"parent": 999})
    body = assert_problem(resp, 409, "conflict")
    assert body["constraint"] == "fk_things_parent_id_things"


async def test_value_too_long_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.post("/things/" + "x" * 40)
    assert_problem(resp, 422, "validation")


async def test_nul_in_text_is_422_through_the_orm_and_the_driver(
    client: httpx.AsyncClient,
) -> None:
    # Postgres text cannot hold NUL (SQLSTATE 22021): bad input, not a 500.
    assert_problem(await client.post("/things/a%00b"), 422, "validation")
    assert (await client.get("/driver/echo", params={"word": "fine"})).json() == {"word": "fine"}
    assert_problem(await client.get("/driver/echo", params={"word": "a\x00b"}), 422, "validation")


async def test_an_unexpected_driver_error_is_a_500_problem(client: httpx.AsyncClient) -> None:
    assert (await client.get("/driver/divide", params={"by": 2})).json() == {"result": 0}
    body = assert_problem(await client.get("/driver/divide", params={"by": 0}), 500, "internal")
    assert "division" not in body["detail"]


async def test_commit_time_violation_is_409_and_rolled_back(
    client: httpx.AsyncClient, db: Database
) -> None:
    assert (await client.post("/late/one")).status_code == 200
    # The deferred constraint fires at COMMIT: the client must see it, not a 200.
    resp = await client.post("/late/one")
    body = assert_problem(resp, 409, "conflict")
    assert body["constraint"] == "uq_late_code"
    late = client.app_state.late  # type: ignore[attr-defined]
    async with db.engine.connect() as conn:
        codes = (await conn.execute(select(late.c.code))).scalars().all()
    assert codes == ["one"]


async def test_problem_raised_in_endpoint_rolls_back(
    client: httpx.AsyncClient, db: Database
) -> None:
    resp = await client.post("/late-then-fail/two")
    assert_problem(resp, 409, "conflict")
    late = client.app_state.late  # type: ignore[attr-defined]
    async with db.engine.connect() as conn:
        codes = (await conn.execute(select(late.c.code))).scalars().all()
    assert codes == []


async def test_unexpected_exception_is_500_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/crash")
    body = assert_problem(resp, 500, "internal")
    assert "secret internals" not in resp.text
    assert body["detail"] == "An unexpected error occurred."


async def test_a_connection_the_database_drops_is_a_503_then_recovers(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post("/terminate")
    assert_problem(resp, 503, "unavailable")
    assert resp.headers["retry-after"] == "1"
    assert (await client.post("/things/after-the-drop")).status_code == 200


async def test_an_unreachable_database_is_a_503_with_retry_after() -> None:
    from studio_common.testing.infra import free_port

    down = Database.connect(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    app = FastAPI()
    app.state.database = down
    install_problem_handlers(app)

    @app.get("/orm")
    async def orm(session: SessionDep) -> None:
        await session.execute(text("SELECT 1"))

    @app.get("/read")
    async def read() -> None:
        await down.read(lambda conn: conn.execute(text("SELECT 1")))

    try:
        async with serve_app(app) as client:
            for path in ("/orm", "/read"):
                resp = await client.get(path)
                body = assert_problem(resp, 503, "unavailable")
                assert resp.headers["retry-after"] == "1"
                assert "try again" in body["detail"]
    finally:
        await down.dispose()


async def test_unreachable_or_overloaded_storage_is_a_503() -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from studio_common.testing.infra import free_port

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test-secret",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/down")
    def down() -> None:
        s3.head_object(Bucket="nowhere", Key="x")

    def client_error(status: int, code: str) -> ClientError:
        response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "PutObject")

    @app.get("/slow-down")
    async def slow_down() -> None:
        raise client_error(503, "SlowDown")

    @app.get("/denied")
    async def denied() -> None:
        raise client_error(403, "AccessDenied")

    async with serve_app(app) as client:
        for path in ("/down", "/slow-down"):
            resp = await client.get(path)
            body = assert_problem(resp, 503, "unavailable")
            assert body["detail"].startswith("Object storage is not reachable")
            assert resp.headers["retry-after"] == "1"
        # A refusal is a bug of ours (wrong credentials, a missing bucket): 500.
        assert_problem(await client.get("/denied"), 500, "internal")


async def test_a_driver_connection_left_closed_or_busy_is_a_503(pg_admin_url: str) -> None:
    """What a Postgres restart leaves in a driver pool: a connection closed
    under the caller, or one still mid-operation. Both are outages (503); an
    InterfaceError of our own making (a wrong argument count) stays a 500."""
    import asyncio

    import asyncpg

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/closed")
    async def closed() -> None:
        conn = await asyncpg.connect(pg_admin_url)
        conn.terminate()
        await conn.fetch("SELECT 1")

    @app.get("/busy")
    async def busy() -> None:
        conn = await asyncpg.connect(pg_admin_url)
        slow = asyncio.create_task(conn.fetch("SELECT pg_sleep(0.5)"))
        await asyncio.sleep(0.05)
        try:
            await conn.fetch("SELECT 1")
        finally:
            await slow
            await conn.close()

    @app.get("/mid-protocol")
    async def mid_protocol() -> None:
        # Raised by asyncpg's protocol when the server vanished mid-statement;
        # seen on POST /api/playback during a restart, not reproducible on demand.
        raise asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        )

    @app.get("/bug")
    async def bug() -> None:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            await conn.fetch("SELECT $1::int", 1, 2)
        finally:
            await conn.close()

    async with serve_app(app) as client:
        for path in ("/closed", "/busy", "/mid-protocol"):
            resp = await client.get(path)
            assert_problem(resp, 503, "unavailable")
            assert resp.headers["retry-after"] == "1"
        assert_problem(await client.get("/bug"), 500, "internal")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
        (
            asyncpg.exceptions.InternalClientError(
                "cannot switch to state 12; another operation is in progress"
            ),
            True,
        ),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        # The statement's own faults: to be retried and, at last, dead-lettered.
        (asyncpg.InterfaceError("the server expects 2 arguments, 1 was passed"), False),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False),
        (ValueError("bad payload"), False),
    ],
)
def test_database_unavailable_tells_an_outage_from_a_fault(exc: Exception, expected: bool) -> None:
    assert database_unavailable(exc) is expected
