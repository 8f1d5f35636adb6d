"""Playback use cases. Reads and favorites run in the request's transaction;
position writes go through :class:`studio_playback.positions.PositionWriter`."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.errors import Forbidden, NotFound
from studio_common.paging import Page, PageParams
from studio_playback.repository import PlaybackRepository
from studio_playback.schemas import (
    ContinueWatching,
    ContinueWatchingItem,
    FavoriteOut,
    PositionOut,
    WatchlistItem,
)

FOREIGN_KEY_VIOLATION = "23503"


def _sqlstate(exc: IntegrityError) -> str | None:
    for source in (exc.orig, getattr(exc.orig, "__cause__", None)):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if code:
            return str(code)
    return None


class PlaybackService:
    def __init__(self, session: AsyncSession, *, watched_fraction: float = 0.9) -> None:
        self.session = session
        self.repo = PlaybackRepository(session)
        self.watched_fraction = watched_fraction

    async def toggle_favorite(
        self, user_id: str, title_id: uuid.UUID, want: bool | None = None
    ) -> FavoriteOut:
        try:
            active = await self.repo.toggle_favorite(user_id, title_id, want)
        except IntegrityError as exc:
            # The title was deleted between our read of it and the insert.
            if _sqlstate(exc) == FOREIGN_KEY_VIOLATION:
                raise NotFound(f"No title with id {title_id}.") from exc
            raise
        if active is None:
            if await self.repo.user_erased(user_id):
                raise Forbidden("This user was deleted.")
            raise NotFound(f"No title with id {title_id}.")
        return FavoriteOut(title_id=title_id, favorite=active)

    async def watchlist(self, user_id: str, paging: PageParams) -> Page[WatchlistItem]:
        rows, total = await self.repo.watchlist(user_id, offset=paging.offset, limit=paging.size)
        return Page.of([WatchlistItem.model_validate(dict(r)) for r in rows], paging, total)

    async def position(self, user_id: str, episode_id: uuid.UUID) -> PositionOut:
        row = await self.repo.position(user_id, episode_id)
        if row is None:
            raise NotFound(f"No episode with id {episode_id}.")
        return PositionOut(
            episode_id=episode_id,
            title_id=row["title_id"],
            position_sec=row["position_sec"] or 0.0,
            duration_sec=row["duration_sec"],
            watched=bool(row["watched"]),
            sequence=row["seq"],
            updated_at=row["updated_at"],
        )

    async def continue_watching(self, user_id: str, limit: int) -> ContinueWatching:
        rows = await self.repo.continue_watching(
            user_id, fraction=self.watched_fraction, limit=limit
        )
        return ContinueWatching(items=[ContinueWatchingItem.model_validate(dict(r)) for r in rows])
