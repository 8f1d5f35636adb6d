"""Catalog, transcoder and identity events → the playback projections.

Every handler runs once per event (the consumer's inbox) and is idempotent on
its own as well: upserts compare ``occurredAt``, deletions leave tombstones
that a late ``created`` or ``uploaded`` respects, and deleting twice is a no-op.
A transcode event for an episode catalog never announced is refused
(:class:`UnknownEntity`: retried, then dead-lettered), never projected.
"""

from __future__ import annotations

import math

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.consumer import EventConsumers, UnknownEntity
from studio_common.events import (
    Envelope,
    EpisodeDeletedV1,
    EpisodeMarkersChangedV1,
    EpisodeUploadedV1,
    TitleCreatedV1,
    TitleDeletedV1,
    TitleUpdatedV1,
    TranscodeCompletedV1,
    UserCreatedV1,
    UserDeletedV1,
)
from studio_playback.repository import PlaybackRepository


async def on_title_upserted(
    event: TitleCreatedV1 | TitleUpdatedV1, envelope: Envelope, session: AsyncSession
) -> None:
    # Both carry the whole projected title; the newer occurredAt wins either way.
    repo = PlaybackRepository(session)
    await repo.lock("title", event.title_id)
    await repo.upsert_title(event.title_id, event.slug, event.name, envelope.occurred_at)


async def on_title_deleted(
    event: TitleDeletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    repo = PlaybackRepository(session)
    await repo.lock("title", event.title_id)
    await repo.delete_title(event.title_id, list(event.episode_ids))


async def on_episode_uploaded(
    event: EpisodeUploadedV1, envelope: Envelope, session: AsyncSession
) -> None:
    repo = PlaybackRepository(session)
    # Shared: uploads of one title's episodes do not wait for each other, but a
    # deletion of the title does.
    await repo.lock("title", event.title_id, shared=True)
    await repo.lock("episode", event.episode_id)
    await repo.upsert_episode(
        event.episode_id,
        event.title_id,
        event.season_number,
        event.episode_number,
        envelope.occurred_at,
    )


async def on_transcode_completed(
    event: TranscodeCompletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    duration = event.duration_sec
    if duration is None or not math.isfinite(duration) or duration <= 0:
        return
    repo = PlaybackRepository(session)
    await repo.lock("episode", event.episode_id)
    if not await repo.episode_known(event.episode_id):
        raise UnknownEntity(f"episode {event.episode_id} is unknown to playback")
    await repo.set_duration(event.episode_id, duration, envelope.occurred_at)


async def on_episode_deleted(
    event: EpisodeDeletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    repo = PlaybackRepository(session)
    await repo.lock("episode", event.episode_id)
    await repo.delete_episode(event.episode_id)


async def on_user_created(event: UserCreatedV1, envelope: Envelope, session: AsyncSession) -> None:
    # Routes that name a user take identity's id; playback stores the subject.
    await PlaybackRepository(session).add_user(event.user_id, event.clerk_id)


async def on_user_deleted(event: UserDeletedV1, envelope: Envelope, session: AsyncSession) -> None:
    # The token subject is the Clerk user id: that is what playback stores.
    await PlaybackRepository(session).erase_user(event.clerk_id)


async def on_markers_changed(
    event: EpisodeMarkersChangedV1, envelope: Envelope, session: AsyncSession
) -> None:
    """Continue-watching moves on at the credits: watched from the ending's start."""
    ending = next((m for m in event.markers if m.kind == "ending"), None)
    watched_from = ending.start_sec if ending is not None and ending.start_sec > 0 else None
    repo = PlaybackRepository(session)
    await repo.lock("episode", event.episode_id)
    await repo.set_watched_from(event.episode_id, watched_from, envelope.occurred_at)


def register(consumers: EventConsumers) -> None:
    consumers.add(TitleCreatedV1, on_title_upserted)
    consumers.add(TitleUpdatedV1, on_title_upserted)
    consumers.add(TitleDeletedV1, on_title_deleted)
    consumers.add(EpisodeUploadedV1, on_episode_uploaded)
    consumers.add(TranscodeCompletedV1, on_transcode_completed)
    consumers.add(EpisodeMarkersChangedV1, on_markers_changed)
    consumers.add(EpisodeDeletedV1, on_episode_deleted)
    consumers.add(UserCreatedV1, on_user_created)
    consumers.add(UserDeletedV1, on_user_deleted)
