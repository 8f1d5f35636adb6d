"""Catalog's deletions → the fingerprints they leave behind.

A deleted episode leaves its season (``markers.forget_episodes``): the
siblings' openings and endings are detected again without it; the outstanding
parts of its chunked jobs are dropped. Each handler runs once per event, in the
inbox's transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.consumer import EventConsumers
from studio_common.events import Envelope, EpisodeDeletedV1, TitleDeletedV1
from studio_transcoder.markers import forget_episodes
from studio_transcoder.partstate import EPISODE_DELETED, cancel_episode_jobs


async def on_episode_deleted(
    event: EpisodeDeletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    await forget_episodes(session, [event.episode_id])
    await cancel_deleted(session, [event.episode_id])


async def on_title_deleted(
    event: TitleDeletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    if event.episode_ids:
        await forget_episodes(session, event.episode_ids)
        await cancel_deleted(session, event.episode_ids)


async def cancel_deleted(session: AsyncSession, episode_ids: list[uuid.UUID]) -> None:
    await cancel_episode_jobs(
        session, episode_ids, code=EPISODE_DELETED, reason="The episode was deleted."
    )


def register(consumers: EventConsumers) -> None:
    consumers.add(EpisodeDeletedV1, on_episode_deleted)
    consumers.add(TitleDeletedV1, on_title_deleted)
