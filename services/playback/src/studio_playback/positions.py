"""The hot path: saving a resume position is one statement on a plain asyncpg pool.

No ORM session, no transaction block and no reset query on release: the write
is a single autocommit ``INSERT ... ON CONFLICT DO UPDATE`` that is prepared
once per connection (asyncpg's statement cache).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from studio_common.db import normalise_pg_url
from studio_common.errors import Forbidden, NotFound
from studio_playback.repository import CURRENT_POSITION_SQL, SAVE_POSITION_SQL
from studio_playback.schemas import PositionOut

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def now_micros() -> int:
    return time.time_ns() // 1000


def ordering_key(sequence: int | None, client_time: datetime | None, now_us: int) -> int:
    """The key that orders one user's writes to one episode (greater wins).

    ``sequence`` as given; else ``clientTime`` in Unix microseconds, capped at
    the server's clock so a device whose clock runs ahead cannot pin its
    position; else the arrival time.
    """
    if sequence is not None:
        return sequence
    if client_time is not None:
        return min((client_time - _EPOCH) // _MICROSECOND, now_us)
    return now_us


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Connections only ever run single autocommit statements: nothing to reset,
    so releasing one does not cost a round trip."""


async def create_pool(database_url: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        normalise_pg_url(database_url),
        min_size=min(2, size),
        max_size=size,
        reset=_no_reset,
        server_settings={"application_name": "playback-positions"},
    )


class PositionWriter:
    def __init__(self, pool: asyncpg.Pool, *, watched_fraction: float) -> None:
        self.pool = pool
        self.watched_fraction = watched_fraction

    async def save(
        self, user_id: str, episode_id: uuid.UUID, position_sec: float, key: int
    ) -> PositionOut:
        try:
            row = await self.pool.fetchrow(
                SAVE_POSITION_SQL, user_id, episode_id, position_sec, key, self.watched_fraction
            )
        except asyncpg.ForeignKeyViolationError as exc:
            # The episode was deleted between our read of it and the insert.
            raise NotFound(f"No episode with id {episode_id}.") from exc
        if row is None or row["title_id"] is None:
            raise NotFound(f"No episode with id {episode_id}.")
        if row["erased"]:
            raise Forbidden("This user was deleted.")
        if row["seq"] is not None:
            return PositionOut(
                episode_id=episode_id,
                title_id=row["title_id"],
                position_sec=row["position_sec"],
                duration_sec=row["duration_sec"],
                watched=row["watched"],
                sequence=row["seq"],
                updated_at=row["updated_at"],
            )
        # A write with a greater key is stored: report that one (the rare path).
        current = await self.pool.fetchrow(CURRENT_POSITION_SQL, user_id, episode_id)
        if current is None:  # deleted in between
            raise NotFound(f"No episode with id {episode_id}.")
        return PositionOut(
            episode_id=episode_id,
            title_id=row["title_id"],
            position_sec=current["position_sec"],
            duration_sec=row["duration_sec"],
            watched=current["watched"],
            applied=False,
            sequence=current["seq"],
            updated_at=current["updated_at"],
        )
