"""Public catalog reads: browse, search, details."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from studio_catalog.config import CatalogSettings
from studio_catalog.context import lists_of
from studio_catalog.names import preferred_language
from studio_catalog.repository import TitleFilter
from studio_catalog.schemas import EpisodeDetailOut, TitleDetail, TitleSummary, TitleType
from studio_catalog.service import CatalogService
from studio_common.access import Access, access
from studio_common.app import runtime_of, settings_of
from studio_common.db import SessionDep
from studio_common.errors import UNAVAILABLE
from studio_common.paging import Page, Paging

router = APIRouter(prefix="/api", tags=["catalog"])

Lang = Annotated[
    str | None,
    Query(
        max_length=35,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        description="Display names in this language (`en`: English, `ja`: native); "
        "else Accept-Language, else romaji",
    ),
]
AcceptLanguage = Annotated[str | None, Header(max_length=500, include_in_schema=False)]


@router.get(
    "/titles",
    response_model=Page[TitleSummary],
    response_model_by_alias=True,
    responses=UNAVAILABLE,  # read on the driver, outside the session dependency
    **access(Access.public),
)
async def list_titles(
    request: Request,
    paging: Paging,
    q: Annotated[
        str | None, Query(max_length=200, description="Search words or a name with typos")
    ] = None,
    genre: Annotated[
        list[str] | None, Query(max_length=10, description="Every genre must match")
    ] = None,
    type: Annotated[TitleType | None, Query()] = None,
    year: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    lang: Lang = None,
    accept_language: AcceptLanguage = None,
) -> Response:
    """Titles, filtered and paged; ordered by relevance when `q` is given, else by name.

    `total` counts matches up to a cap (`totalCapped: true` past it: at least
    that many), which keeps broad filters on a large catalog fast."""
    # Usually answered by studio_catalog.api.listing before routing, with the
    # same query and the same bytes; this route answers what that one leaves
    # (errors, parameters it does not know) and is what OpenAPI describes.
    f = TitleFilter(
        q=q.strip() if q and q.strip() else None,
        genres=tuple(g.strip().lower() for g in genre or () if g.strip()),
        type=type,
        year=year,
    )
    language = preferred_language(lang, accept_language)
    items, total, capped = await lists_of(request).page(f, offset=paging.offset, limit=paging.size)
    page = Page[TitleSummary].of(
        [TitleSummary.model_validate(t).for_language(language) for t in items],
        paging,
        total,
        capped=capped,
    )
    # Validated once, here: returned as a model, FastAPI would validate the
    # page a second time and encode it through `jsonable_encoder`.
    return public_response(request, page.model_dump_json(by_alias=True))


@router.get(
    "/titles/{slug}",
    response_model=TitleDetail,
    response_model_by_alias=True,
    responses=UNAVAILABLE,
    **access(Access.public),
)
async def get_title(
    slug: str, request: Request, lang: Lang = None, accept_language: AcceptLanguage = None
) -> Response:
    """A title with its seasons and their episodes; `displayName` in the viewer's language."""
    language = preferred_language(lang, accept_language)

    async def detail(conn: AsyncConnection) -> TitleDetail:
        async with AsyncSession(bind=conn) as session:
            title = await CatalogService(session).title_by_slug(slug)
            out = TitleDetail.model_validate(title)
            out.for_language(language)
            return out

    # A title page is read far more than it is written: no transaction needed.
    title = await runtime_of(request).database.read(detail)
    return public_response(request, title.model_dump_json(by_alias=True))


@router.get(
    "/episodes/{episode_id}",
    response_model=EpisodeDetailOut,
    response_model_by_alias=True,
    **access(Access.public),
)
async def get_episode(
    episode_id: uuid.UUID, request: Request, response: Response, session: SessionDep
) -> EpisodeDetailOut:
    response.headers.update(_cache_headers(request))
    service = CatalogService(session)
    episode = await service.episode(episode_id)
    following = await service.next_episode(episode)
    out = EpisodeDetailOut.model_validate(episode)
    out.next_episode_id = following.id if following is not None else None
    return out


def _cache_headers(request: Request) -> dict[str, str]:
    """Short public caching: the same for every anonymous caller of the URL (and
    language). studio_common.caching makes it no-store when a token was sent."""
    seconds = settings_of(request, CatalogSettings).public_cache_seconds
    if not seconds:
        return {"Cache-Control": "no-cache"}
    return {"Cache-Control": f"public, max-age={seconds}", "Vary": "Accept-Language"}


def public_response(request: Request, body: str | bytes) -> Response:
    return Response(body, media_type="application/json", headers=_cache_headers(request))
