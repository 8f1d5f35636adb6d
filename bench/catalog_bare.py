"""The ceiling for bench/catalog.py: the same two queries through bare asyncpg
behind a minimal Starlette route (``uvicorn bench.catalog_bare:app``).

Same SQL as the catalog's repository (ADR 3: its two-phase search over every
name, compiled by the repository itself; genre containment ordered by name;
totals counted up to the same cap), same JSON shape.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from studio_catalog.repository import SUMMARY_COLUMNS, TitleFilter, list_title_page

COUNT_CAP = int(os.environ.get("CATALOG_TOTAL_COUNT_CAP", "1000"))
GENRE_WHERE = "genres @> $1::varchar[]"
BY_GENRE = f"""
SELECT {", ".join(c.name for c in SUMMARY_COLUMNS)} FROM catalog.titles
WHERE {GENRE_WHERE} ORDER BY name, id OFFSET $2 LIMIT $3
"""  # noqa: S608
COUNT_GENRE = f"SELECT count(*) FROM (SELECT 1 FROM catalog.titles WHERE {GENRE_WHERE} LIMIT $2) s"  # noqa: S608


def _item(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "slug": row["slug"],
        "name": row["name"],
        "type": row["type"],
        "year": row["year"],
        "posterUrl": row["poster_url"],
        "genres": row["genres"],
        "languages": row["languages"],
        "ratingAvg": row["rating_avg"],
        "names": json.loads(row["names"]) if isinstance(row["names"], str) else row["names"],
    }


async def _no_reset(connection: asyncpg.Connection) -> None:
    pass


@asynccontextmanager
async def lifespan(app: Starlette) -> Any:
    app.state.pool = await asyncpg.create_pool(
        os.environ["BARE_DATABASE_URL"],
        min_size=10,
        max_size=10,
        # asyncpg's pool runs RESET ALL when a connection is released, undoing
        # the repository's once-per-connection SET: from a connection's sixth
        # search on, Postgres then used generic plans (a kanji pair took 120 ms
        # instead of 5). As a connection default it survives the reset.
        server_settings={"plan_cache_mode": "force_custom_plan"},
        # As the service's list pool (studio_catalog.reads): its reads leave no
        # state, so releasing a connection sends no reset.
        reset=_no_reset,
    )
    yield
    await app.state.pool.close()


async def titles(request: Request) -> Response:
    params = request.query_params
    page = int(params.get("page", "1"))
    size = int(params.get("pageSize", "20"))
    q = (params.get("q") or "").strip()
    offset = (page - 1) * size
    async with request.app.state.pool.acquire() as conn:
        if q:
            # The repository's own search (plan, passes, corrections) on the
            # bare connection: the bare route measures the service's overhead,
            # not a different search.
            rows, total, capped = await list_title_page(
                conn,
                TitleFilter(q=q),
                offset=offset,
                limit=size,
                count_cap=COUNT_CAP,
            )
            count = None
        else:
            genres = [g.lower() for g in params.getlist("genre")]
            rows = await conn.fetch(BY_GENRE, genres, offset, size)
            count: tuple[str, list[Any]] | None = (COUNT_GENRE, [genres, COUNT_CAP + 1])
        if count is None:
            pass
        elif rows and len(rows) < size:
            total, capped = offset + len(rows), False
        else:
            counted = int(await conn.fetchval(count[0], *count[1]))
            total, capped = min(counted, COUNT_CAP), counted > COUNT_CAP
    body = {
        "items": [_item(r) for r in rows],
        "page": page,
        "pageSize": size,
        "total": total,
        "totalPages": math.ceil(total / size) if total else 0,
        "totalCapped": capped,
    }
    return Response(json.dumps(body), media_type="application/json")


async def ready(request: Request) -> Response:
    return Response("{}", media_type="application/json")


app = Starlette(routes=[Route("/api/titles", titles), Route("/readyz", ready)], lifespan=lifespan)
