"""``GET /api/titles`` (browse and search) without the framework's per-request machinery.

Once a search's SQL takes 2 to 4 ms, FastAPI's parameter parsing and dependency
resolution, the page's pydantic models and their serialisation are about a
third of the request. :class:`TitleListFastPath` (a
:class:`studio_common.fastpath.FastPath`) answers the usual requests itself:
the same parameters read the same way (last value of a repeated scalar, every
``genre``), the same query (:class:`studio_catalog.reads.TitleLists`), the same cache headers,
and a body built from the rows with pydantic-core's serialiser, byte for byte
what the declared route returns (``tests/test_list_fast_path.py`` compares
them). Anything it does not take as it is (a parameter the route does not
know, a value that would not validate, a method other than GET) goes to the
declared route, which answers it, errors included, as before; that route also
stays what the OpenAPI document describes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, get_args
from urllib.parse import parse_qsl

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from studio_catalog.api.public import public_response
from studio_catalog.context import lists_of
from studio_catalog.names import display_name, preferred_language
from studio_catalog.repository import TitleFilter
from studio_catalog.schemas import TitleType
from studio_common.access import Access
from studio_common.fastpath import FastPath, header
from studio_common.paging import MAX_PAGE_NUMBER

PATH = "/api/titles"

# The declared route's bounds (studio_catalog.api.public.list_titles).
_TYPES = frozenset(get_args(TitleType))
_MAX_Q = 200
_MAX_GENRES = 10
_MAX_LANG = 35
_MAX_ACCEPT_LANGUAGE = 500
_LANG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
# Plain positive numbers only: any other spelling pydantic might also accept
# (signs, spaces, leading zeros) is left to the route.
_NUMBER = re.compile(r"[1-9][0-9]{0,6}")
_ACCEPT_LANGUAGE = b"accept-language"


@dataclass(frozen=True, slots=True)
class TitleQuery:
    filter: TitleFilter
    page: int
    size: int
    language: str | None


def _number(value: str, low: int, high: int) -> int | None:
    if not _NUMBER.fullmatch(value):
        return None
    n = int(value)
    return n if low <= n <= high else None


def parse(
    query_string: bytes, accept_language: bytes | None, max_page_size: int
) -> TitleQuery | None:
    """The request as the declared route would read it, or None where that route
    would refuse it or read it in a way not mirrored here."""
    # How Starlette parses a query string; a scalar's last value wins, as there.
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    scalars: dict[str, str] = {}
    genres: list[str] = []
    for key, value in pairs:
        if key == "genre":
            genres.append(value)
        elif key in ("q", "type", "year", "lang", "page", "pageSize"):
            scalars[key] = value
        else:
            return None
    q = scalars.get("q")
    if (q is not None and len(q) > _MAX_Q) or len(genres) > _MAX_GENRES:
        return None
    type_ = scalars.get("type")
    if type_ is not None and type_ not in _TYPES:
        return None
    year = None
    if "year" in scalars and (year := _number(scalars["year"], 1900, 2100)) is None:
        return None
    page = _number(scalars["page"], 1, MAX_PAGE_NUMBER) if "page" in scalars else 1
    size = _number(scalars["pageSize"], 1, max_page_size) if "pageSize" in scalars else 20
    if page is None or size is None:
        return None
    lang = scalars.get("lang")
    if lang is not None and (len(lang) > _MAX_LANG or not _LANG.fullmatch(lang)):
        return None
    accept = accept_language.decode("latin-1") if accept_language is not None else None
    if accept is not None and len(accept) > _MAX_ACCEPT_LANGUAGE:
        return None
    stripped = q.strip() if q else None
    return TitleQuery(
        TitleFilter(
            q=stripped or None,
            genres=tuple(g.strip().lower() for g in genres if g.strip()),
            type=type_,
            year=year,
        ),
        page,
        size,
        preferred_language(lang, accept),
    )


def _item(row: dict[str, Any], language: str | None) -> dict[str, Any]:
    """A row as ``TitleSummary`` serialises it, its fields in the model's order."""
    names = row["names"]
    # JSONB arrives as text on the driver; its objects keep jsonb's key order.
    if isinstance(names, str):
        names = json.loads(names)
    return {
        "id": str(row["id"]),
        "slug": row["slug"],
        "name": row["name"],
        "displayName": display_name(row["name"], names, language),
        "type": row["type"],
        "year": row["year"],
        "posterUrl": row["poster_url"],
        "genres": row["genres"],
        "languages": row["languages"],
        "ratingAvg": row["rating_avg"],
        "names": [{"kind": n["kind"], "language": n["language"], "name": n["name"]} for n in names],
    }


def page_body(rows: list[dict[str, Any]], query: TitleQuery, total: int, *, capped: bool) -> bytes:
    """``Page[TitleSummary]`` as the declared route writes it, without the models."""
    return to_json(
        {
            "items": [_item(r, query.language) for r in rows],
            "page": query.page,
            "pageSize": query.size,
            "total": total,
            "totalPages": math.ceil(total / query.size) if total else 0,
            "totalCapped": capped,
        }
    )


class TitleListFastPath(FastPath[TitleQuery]):
    route = PATH
    access = Access.public

    def match(self, scope: Scope) -> TitleQuery | None:
        if scope["path"] != PATH or scope["method"] != "GET":
            return None
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is None:
            return None
        return parse(
            scope.get("query_string", b""),
            header(scope, _ACCEPT_LANGUAGE),
            int(runtime.settings.max_page_size),
        )

    async def answer(self, request: Request, matched: TitleQuery) -> Response:
        rows, total, capped = await lists_of(request).page(
            matched.filter, offset=(matched.page - 1) * matched.size, limit=matched.size
        )
        return public_response(request, page_body(rows, matched, total, capped=capped))
