"""Playback routes: favorites, watchlist, resume positions, continue-watching."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from studio_common.access import Access, access
from studio_common.app import runtime_of
from studio_common.auth import CurrentUser, Principal, current_user
from studio_common.db import Database, SessionDep
from studio_common.paging import Page, Paging
from studio_playback.api.fastpath import write_position
from studio_playback.config import PlaybackSettings
from studio_playback.context import PlaybackContext
from studio_playback.repository import PlaybackRepository
from studio_playback.schemas import (
    ContinueWatching,
    FavoriteIn,
    FavoriteOut,
    PositionIn,
    PositionOut,
    WatchlistItem,
)
from studio_playback.service import PlaybackService

router = APIRouter(prefix="/api", tags=["playback"])


def _settings(request: Request) -> PlaybackSettings:
    ctx: PlaybackContext = runtime_of(request).context
    return ctx.settings


def _service(request: Request, session: SessionDep) -> PlaybackService:
    return PlaybackService(session, watched_fraction=_settings(request).watched_fraction)


@router.post(
    "/favorites",
    response_model=FavoriteOut,
    response_model_by_alias=True,
    responses={404: {"description": "No such title"}},
    **access(Access.user),
)
async def toggle_favorite(
    body: FavoriteIn, principal: CurrentUser, request: Request, session: SessionDep
) -> FavoriteOut:
    """Toggle a title in the caller's favorites (or set `favorite` explicitly);
    returns the new state."""
    return await _service(request, session).toggle_favorite(
        principal.subject, body.title_id, body.favorite
    )


async def subject_of_user(request: Request, value: str) -> str | None:
    """identity's user id → the token subject playback keys its rows by."""
    try:
        user_id = uuid.UUID(value)
    except ValueError:
        return None
    database: Database = runtime_of(request).database
    async with database.transaction() as session:
        return await PlaybackRepository(session).subject_of(user_id)


USER_ID = (
    "The user's id in identity: the `id` that `GET /api/me` and `GET /api/admin/users` "
    "return; or `me`. An unknown id is 404."
)


@router.get(
    "/users/{user_id}/watchlist",
    response_model=Page[WatchlistItem],
    response_model_by_alias=True,
    **access(Access.self_or_admin, owner="user_id", resolve_owner=subject_of_user),
)
async def watchlist(
    request: Request,
    session: SessionDep,
    paging: Paging,
    user_id: Annotated[str, Path(min_length=1, max_length=255, description=USER_ID)],
) -> Page[WatchlistItem]:
    """A user's favorites with their titles, newest first: the caller's own, or
    anyone's for an admin."""
    owner: str = request.state.owner_subject  # set by the access check
    return await _service(request, session).watchlist(owner, paging)


_USER = access(Access.user)


@router.post(
    "/playback",
    response_model=PositionOut,
    response_model_by_alias=True,
    responses={
        404: {"description": "No such episode"},
        413: {"description": "A body over 16 KiB"},
        429: {"description": "Too many position writes are waiting; retry after `Retry-After`"},
        503: {"description": "The service is stopping; retry after `Retry-After`"},
    },
    dependencies=_USER["dependencies"],
    openapi_extra={
        **_USER["openapi_extra"],
        # The body is parsed in the endpoint (below), so it is declared here.
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": PositionIn.model_json_schema(by_alias=True)}
            },
        },
    },
)
async def save_position(request: Request) -> Response:
    """Save the caller's resume position in an episode.

    Clamped to the episode's duration when known; at or past the watched
    fraction (90 %) the episode is marked watched. A write whose ordering key
    (`sequence`, else `clientTime`, else arrival time) is not greater than the
    stored one changes nothing and answers `applied: false` with the stored position.
    """
    # Usually answered by studio_playback.api.fastpath before routing; the same code.
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # set by the access dependency
        principal = await current_user(request)
    return await write_position(request, principal, await request.body())


@router.get(
    "/playback/{episode_id}",
    response_model=PositionOut,
    response_model_by_alias=True,
    response_model_exclude={"applied"},
    **access(Access.user),
)
async def get_position(
    episode_id: uuid.UUID, principal: CurrentUser, request: Request, session: SessionDep
) -> PositionOut:
    """The caller's resume position in an episode (0 when never played)."""
    return await _service(request, session).position(principal.subject, episode_id)


@router.get(
    "/me/continue-watching",
    response_model=ContinueWatching,
    response_model_by_alias=True,
    **access(Access.user),
)
async def continue_watching(
    principal: CurrentUser,
    request: Request,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> ContinueWatching:
    """For each title in progress, the episode to resume, or the next one when the
    last was finished; newest activity first."""
    return await _service(request, session).continue_watching(principal.subject, limit)
