"""Title lists on their own asyncpg pool (studio_catalog.reads)."""

from __future__ import annotations

from typing import Any

import asyncpg

from studio_catalog import reads
from studio_catalog.context import CatalogContext
from studio_common.db import normalise_pg_url


def _lists(app: Any) -> Any:
    ctx = app.state.runtime.context
    assert isinstance(ctx, CatalogContext)
    return ctx.lists


async def test_list_connections_plan_each_search_for_its_values(client, catalog_app, make):
    await make.title(name="Planned Show")
    r = await client.get("/api/titles", params={"q": "planned"})
    assert r.status_code == 200
    async with _lists(catalog_app).pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        assert await conn.fetchval("SHOW application_name") == "catalog-lists"


async def test_a_list_after_the_server_dropped_its_connections_is_answered(
    client, catalog_app, catalog_settings, make
):
    title = await make.title(name="Still Here")
    for q in ("still here", None):  # a search, then a plain list
        params = {"q": q} if q else {}
        assert (await client.get("/api/titles", params=params)).status_code == 200
        admin = await asyncpg.connect(normalise_pg_url(catalog_settings.database_url))
        try:
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'catalog-lists' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert dropped >= 1
        r = await client.get("/api/titles", params=params)
        assert r.status_code == 200, r.text
        assert title["slug"] in [t["slug"] for t in r.json()["items"]]


async def test_a_connection_lost_mid_read_is_read_again_on_another(client, make, monkeypatch):
    title = await make.title(name="Read Twice")
    real = reads.list_title_page
    calls: list[bool] = []

    async def drop_first(conn: Any, *args: Any, **kw: Any) -> Any:
        calls.append(True)
        if len(calls) == 1:
            conn.terminate()  # as a server restart leaves it
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        return await real(conn, *args, **kw)

    monkeypatch.setattr(reads, "list_title_page", drop_first)
    r = await client.get("/api/titles", params={"q": "read twice"})
    assert r.status_code == 200, r.text
    assert [t["slug"] for t in r.json()["items"]] == [title["slug"]]
    assert len(calls) == 2


async def test_a_failing_read_on_a_live_connection_is_not_repeated(client, monkeypatch):
    calls: list[bool] = []

    async def fail(conn: Any, *args: Any, **kw: Any) -> Any:
        calls.append(True)
        raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")

    monkeypatch.setattr(reads, "list_title_page", fail)
    r = await client.get("/api/titles", params={"q": "anything"})
    assert r.status_code == 500  # the database refused it: no outage, no second try
    assert r.headers["content-type"] == "application/problem+json"
    assert len(calls) == 1
