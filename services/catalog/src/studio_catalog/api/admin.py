"""Editor and admin writes. Every route here requires the editor role or above."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from studio_catalog.config import CatalogSettings
from studio_catalog.schemas import (
    EpisodeAdminOut,
    EpisodeIn,
    EpisodePatch,
    MarkersIn,
    SeasonIn,
    SeasonOut,
    TitleDetail,
    TitleIn,
    TitlePatch,
)
from studio_catalog.service import CatalogService
from studio_common.access import Access, access
from studio_common.app import settings_of
from studio_common.auth import EditorUser
from studio_common.db import SessionDep

router = APIRouter(prefix="/api/admin", tags=["catalog admin"])
EDITOR = access(Access.editor)


async def _detail(service: CatalogService, slug: str) -> TitleDetail:
    detail = TitleDetail.model_validate(await service.title_by_slug(slug))
    detail.for_language(None)
    return detail


@router.post("/titles", status_code=status.HTTP_201_CREATED, response_model=TitleDetail, **EDITOR)
async def create_title(data: TitleIn, session: SessionDep, response: Response) -> TitleDetail:
    service = CatalogService(session)
    title = await service.create_title(data)
    response.headers["Location"] = f"/api/titles/{title.slug}"
    return await _detail(service, title.slug)


@router.put("/titles/{title_id}", response_model=TitleDetail, **EDITOR)
async def replace_title(title_id: uuid.UUID, data: TitleIn, session: SessionDep) -> TitleDetail:
    service = CatalogService(session)
    title = await service.update_title(title_id, data, partial=False)
    return await _detail(service, title.slug)


@router.patch("/titles/{title_id}", response_model=TitleDetail, **EDITOR)
async def update_title(title_id: uuid.UUID, data: TitlePatch, session: SessionDep) -> TitleDetail:
    service = CatalogService(session)
    title = await service.update_title(title_id, data, partial=True)
    return await _detail(service, title.slug)


@router.delete("/titles/{title_id}", status_code=status.HTTP_204_NO_CONTENT, **EDITOR)
async def delete_title(title_id: uuid.UUID, session: SessionDep) -> Response:
    """Deletes the title with its seasons and episodes."""
    await CatalogService(session).delete_title(title_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/seasons", status_code=status.HTTP_201_CREATED, response_model=SeasonOut, **EDITOR)
async def create_season(data: SeasonIn, session: SessionDep) -> SeasonOut:
    season = await CatalogService(session).create_season(data)
    return SeasonOut(id=season.id, title_id=season.title_id, number=season.number, name=season.name)


@router.delete("/seasons/{season_id}", status_code=status.HTTP_204_NO_CONTENT, **EDITOR)
async def delete_season(season_id: uuid.UUID, session: SessionDep) -> Response:
    """Deletes the season and its episodes."""
    await CatalogService(session).delete_season(season_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/episodes", status_code=status.HTTP_201_CREATED, response_model=EpisodeAdminOut, **EDITOR
)
async def create_episode(
    data: EpisodeIn, user: EditorUser, session: SessionDep, request: Request, response: Response
) -> EpisodeAdminOut:
    """Stores the episode as `queued` and emits `catalog.episode.uploaded` in the same transaction.

    The source must be a video media verified, uploaded by the caller (or the
    caller is an admin); a source whose verification has not reached catalog yet
    is waited for a few seconds. Otherwise 422: `source-key-invalid`,
    `source-not-verified`, `source-not-owned` or `subtitle-not-attached`."""
    wait = settings_of(request, CatalogSettings).source_wait_seconds
    episode = await CatalogService(session).create_episode(data, user, source_wait=wait)
    response.headers["Location"] = f"/api/episodes/{episode.id}"
    return EpisodeAdminOut.model_validate(episode)


@router.get("/episodes/{episode_id}", response_model=EpisodeAdminOut, **EDITOR)
async def get_episode_admin(episode_id: uuid.UUID, session: SessionDep) -> EpisodeAdminOut:
    """The episode with its source key, HLS location and transcode log."""
    return EpisodeAdminOut.model_validate(await CatalogService(session).episode(episode_id))


@router.patch("/episodes/{episode_id}", response_model=EpisodeAdminOut, **EDITOR)
async def update_episode(
    episode_id: uuid.UUID, data: EpisodePatch, session: SessionDep
) -> EpisodeAdminOut:
    return EpisodeAdminOut.model_validate(
        await CatalogService(session).update_episode(episode_id, data)
    )


@router.put("/episodes/{episode_id}/markers", response_model=EpisodeAdminOut, **EDITOR)
async def set_episode_markers(
    episode_id: uuid.UUID, data: MarkersIn, session: SessionDep
) -> EpisodeAdminOut:
    """Sets (or, with an empty list, clears) the opening and ending; detection never
    overwrites an editor's markers."""
    return EpisodeAdminOut.model_validate(
        await CatalogService(session).set_markers(episode_id, data)
    )


@router.delete("/episodes/{episode_id}", status_code=status.HTTP_204_NO_CONTENT, **EDITOR)
async def delete_episode(episode_id: uuid.UUID, session: SessionDep) -> Response:
    await CatalogService(session).delete_episode(episode_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
