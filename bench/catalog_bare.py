"""The ceiling for bench/catalog.py: the same two queries through bare asyncpg
behind a minimal Starlette route (``uvicorn bench.catalog_bare:app``).

Same SQL as the catalog's repository (ADR 3: prefix full text OR trigram word
similarity, ranked; genre containment ordered by name; totals counted up to
the same cap), same JSON shape.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COLUMNS = "id, slug, name, type, year, poster_url, genres, languages, rating_avg"
COUNT_CAP = int(os.environ.get("CATALOG_TOTAL_COUNT_CAP", "1000"))
GENRE_WHERE = "genres @> $1::varchar[]"
QUERY_WHERE = "(search @@ to_tsquery('simple', $2) OR $1 <% name)"
BY_GENRE = f"""
SELECT {COLUMNS} FROM catalog.titles
WHERE {GENRE_WHERE} ORDER BY name, id OFFSET $2 LIMIT $3
"""  # noqa: S608
BY_QUERY = f"""
SELECT {COLUMNS} FROM catalog.titles
WHERE {QUERY_WHERE}
ORDER BY CASE WHEN search @@ to_tsquery('simple', $2)
    THEN 1 + ts_rank(search, to_tsquery('simple', $2)) + ts_rank(search, to_tsquery('simple', $5))
    ELSE word_similarity($1, name) END DESC, name, id
OFFSET $3 LIMIT $4
"""  # noqa: S608
COUNT_GENRE = f"SELECT count(*) FROM (SELECT 1 FROM catalog.titles WHERE {GENRE_WHERE} LIMIT $2) s"  # noqa: S608
COUNT_QUERY = f"SELECT count(*) FROM (SELECT 1 FROM catalog.titles WHERE {QUERY_WHERE} LIMIT $3) s"  # noqa: S608
_WORD = re.compile(r"\w+")


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
    }


@asynccontextmanager
async def lifespan(app: Starlette) -> Any:
    app.state.pool = await asyncpg.create_pool(
        os.environ["BARE_DATABASE_URL"], min_size=10, max_size=10
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
            words = _WORD.findall(q.lower())[:10]
            tsq = " & ".join(f"{w}:*" for w in words)
            rows = await conn.fetch(BY_QUERY, q, tsq, offset, size, " & ".join(words))
            count = (COUNT_QUERY, q, tsq)
        else:
            genres = [g.lower() for g in params.getlist("genre")]
            rows = await conn.fetch(BY_GENRE, genres, offset, size)
            count = (COUNT_GENRE, genres)
        if rows and len(rows) < size:
            total, capped = offset + len(rows), False
        else:
            counted = int(await conn.fetchval(count[0], *count[1:], COUNT_CAP + 1))
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
