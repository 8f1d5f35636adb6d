"""Public catalog reads: browse, search, details."""

from __future__ import annotations

import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from studio_catalog.repository import TitleFilter
from studio_catalog.schemas import EpisodeOut, Page, TitleDetail, TitleSummary, TitleType
from studio_catalog.service import CatalogService
from studio_common.access import Access, access
from studio_common.db import SessionDep
from studio_common.errors import ValidationFailed

router = APIRouter(prefix="/api", tags=["catalog"])


@router.get(
    "/titles",
    response_model=Page[TitleSummary],
    response_model_by_alias=True,
    **access(Access.public),
)
async def list_titles(
    request: Request,
    session: SessionDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Search words or a name with typos")
    ] = None,
    genre: Annotated[
        list[str] | None, Query(max_length=10, description="Every genre must match")
    ] = None,
    type: Annotated[TitleType | None, Query()] = None,
    year: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1)] = 20,
) -> Page[TitleSummary]:
    """Titles, filtered and paged; ordered by relevance when `q` is given, else by name."""
    max_size: int = request.app.state.runtime.settings.max_page_size
    if page_size > max_size:
        raise ValidationFailed(
            f"pageSize may be at most {max_size}.",
            extra={
                "errors": [
                    {
                        "pointer": "query.pageSize",
                        "message": f"at most {max_size}",
                        "code": "less_than_equal",
                    }
                ]
            },
        )
    f = TitleFilter(
        q=q.strip() if q and q.strip() else None,
        genres=tuple(g.strip().lower() for g in genre or () if g.strip()),
        type=type,
        year=year,
    )
    items, total = await CatalogService(session).list_titles(f, page, page_size)
    return Page[TitleSummary](
        items=[TitleSummary.model_validate(t) for t in items],
        page=page,
        page_size=page_size,
        total=total,
        total_pages=math.ceil(total / page_size) if total else 0,
    )


@router.get(
    "/titles/{slug}",
    response_model=TitleDetail,
    response_model_by_alias=True,
    **access(Access.public),
)
async def get_title(slug: str, session: SessionDep) -> TitleDetail:
    """A title with its seasons and their episodes."""
    return TitleDetail.model_validate(await CatalogService(session).title_by_slug(slug))


@router.get(
    "/episodes/{episode_id}",
    response_model=EpisodeOut,
    response_model_by_alias=True,
    **access(Access.public),
)
async def get_episode(episode_id: uuid.UUID, session: SessionDep) -> EpisodeOut:
    return EpisodeOut.model_validate(await CatalogService(session).episode(episode_id))
