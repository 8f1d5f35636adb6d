"""Wire models: camelCase JSON, bounded numbers, strings and pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from studio_common.schemas import RequestModel

# A resume position beyond a day is a client bug, not an episode.
MAX_POSITION_SEC = 86_400.0
MAX_SEQUENCE = 2**63 - 1
EARLIEST_CLIENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class FavoriteIn(RequestModel):
    title_id: uuid.UUID
    # Omitted: toggle. Given: set this state (a retry-safe alternative to toggling).
    favorite: bool | None = None


class FavoriteOut(Schema):
    title_id: uuid.UUID
    favorite: bool


class WatchlistItem(Schema):
    title_id: uuid.UUID
    slug: str
    name: str
    favorited_at: datetime


class PositionIn(RequestModel):
    episode_id: uuid.UUID
    position_sec: float = Field(ge=0, le=MAX_POSITION_SEC, allow_inf_nan=False)
    # Orders the writes of one user for one episode: a write applies only when
    # its key is greater than the stored one. The key is `sequence` when given,
    # else `clientTime` in Unix microseconds, else the server's arrival time in
    # Unix microseconds. Clients on several devices should send `clientTime`
    # (or a time-based sequence) so that their keys compare.
    sequence: int | None = Field(default=None, ge=0, le=MAX_SEQUENCE)
    client_time: AwareDatetime | None = None

    @field_validator("client_time")
    @classmethod
    def _plausible_clock(cls, value: datetime | None) -> datetime | None:
        if value is not None and value < EARLIEST_CLIENT_TIME:
            raise ValueError("must be after 2000-01-01T00:00:00Z")
        return value


class PositionOut(Schema):
    episode_id: uuid.UUID
    title_id: uuid.UUID | None = None
    position_sec: float
    duration_sec: float | None = None
    watched: bool
    # False when a newer write was already stored; the body then shows that one.
    applied: bool = True
    sequence: int | None = None
    updated_at: datetime | None = None


class ContinueWatchingItem(Schema):
    title_id: uuid.UUID
    slug: str | None
    name: str | None
    episode_id: uuid.UUID
    season_number: int
    episode_number: int
    position_sec: float
    duration_sec: float | None
    # True when the last episode was finished and this is the one after it.
    up_next: bool
    last_activity_at: datetime


class ContinueWatching(Schema):
    items: list[ContinueWatchingItem]
