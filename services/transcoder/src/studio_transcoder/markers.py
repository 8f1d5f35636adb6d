"""Fingerprints stored per season, and detection re-run when one lands.

Runs inside the transaction that marks the job ready: the fingerprint, the
markers and their events commit together (outbox). A transaction-scoped
advisory lock per season serialises two episodes of one season finishing at
once, so the later one always sees the earlier one's fingerprint.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.consumer import EventConsumers
from studio_common.events import (
    Envelope,
    EpisodeDeletedV1,
    EpisodeMarker,
    EpisodeMarkersDetectedV1,
    EpisodeUploadedV1,
    TitleDeletedV1,
)
from studio_common.outbox import MessagingTables, enqueue
from studio_transcoder.media.detection import EpisodePrint, Marker, detect_season
from studio_transcoder.media.fingerprint import Fingerprint, pack, unpack
from studio_transcoder.models import EpisodeFingerprint, messaging

log = logging.getLogger("studio.transcoder.markers")

# Keeps season locks apart from the per-episode job locks (their keys are episode ids).
SEASON_LOCK_SALT = 0x5EA5


def season_lock_key(season_id: uuid.UUID) -> int:
    return int.from_bytes(season_id.bytes[8:], "big", signed=True) ^ SEASON_LOCK_SALT


def _as_json(markers: list[Marker]) -> list[dict[str, Any]]:
    return [{"kind": m.kind, "startSec": m.start, "endSec": m.end} for m in markers]


def _print(row: EpisodeFingerprint) -> EpisodePrint:
    return EpisodePrint(
        row.episode_id,
        Fingerprint(
            duration=row.duration_sec,
            head=unpack(row.head),
            tail=unpack(row.tail),
            tail_start=row.tail_start_sec,
        ),
    )


async def record_and_detect(
    session: AsyncSession,
    event: EpisodeUploadedV1,
    fingerprint: Fingerprint,
    tables: MessagingTables = messaging,
) -> None:
    """Stores the episode's fingerprint and publishes the markers of the season
    that changed (the episode's own always, possibly empty).

    In a savepoint: markers are a convenience, and a failure here must not undo
    the job's completion that shares the transaction."""
    try:
        async with session.begin_nested():
            await _record_and_detect(session, event, fingerprint, tables)
    except Exception:
        log.exception("markers not detected", extra={"episode_id": str(event.episode_id)})


async def _record_and_detect(
    session: AsyncSession,
    event: EpisodeUploadedV1,
    fingerprint: Fingerprint,
    tables: MessagingTables,
) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(season_lock_key(event.season_id))))
    row = await session.get(EpisodeFingerprint, event.episode_id, with_for_update=True)
    if row is None:
        row = EpisodeFingerprint(episode_id=event.episode_id, markers=[])
        session.add(row)
    row.season_id = event.season_id
    row.title_id = event.title_id
    row.season_number = event.season_number
    row.duration_sec = fingerprint.duration
    row.head = pack(fingerprint.head)
    row.tail = pack(fingerprint.tail)
    row.tail_start_sec = fingerprint.tail_start
    await session.flush()
    await detect_and_publish(session, event.season_id, always=event.episode_id, tables=tables)


async def detect_and_publish(
    session: AsyncSession,
    season_id: uuid.UUID,
    always: uuid.UUID | None = None,
    tables: MessagingTables = messaging,
) -> None:
    """Markers of every episode of the season, each changed one announced through
    ``tables``' outbox (the worker's, when a job completes)."""
    siblings = list(
        (
            await session.scalars(
                select(EpisodeFingerprint)
                .where(EpisodeFingerprint.season_id == season_id)
                .order_by(EpisodeFingerprint.episode_id)
            )
        ).all()
    )
    prints = [_print(r) for r in siblings]
    # Pure CPU work (well under a second for a season): off the event loop.
    found = await asyncio.to_thread(detect_season, prints)
    for sibling in siblings:
        markers = _as_json(found.get(sibling.episode_id, []))
        if markers == sibling.markers and sibling.episode_id != always:
            continue
        sibling.markers = markers
        await enqueue(
            session,
            tables,
            EpisodeMarkersDetectedV1(
                episode_id=sibling.episode_id,
                season_id=season_id,
                markers=[EpisodeMarker.model_validate(m) for m in markers],
                duration_sec=sibling.duration_sec,
            ),
        )


async def forget_episodes(session: AsyncSession, episode_ids: list[uuid.UUID]) -> None:
    """Deleted episodes leave their seasons: the siblings' markers are detected again."""
    seasons = (
        await session.scalars(
            delete(EpisodeFingerprint)
            .where(EpisodeFingerprint.episode_id.in_(episode_ids))
            .returning(EpisodeFingerprint.season_id)
        )
    ).all()
    for season_id in sorted(set(seasons)):
        await session.execute(select(func.pg_advisory_xact_lock(season_lock_key(season_id))))
        await detect_and_publish(session, season_id)


async def on_episode_deleted(
    event: EpisodeDeletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    await forget_episodes(session, [event.episode_id])


async def on_title_deleted(
    event: TitleDeletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    if event.episode_ids:
        await forget_episodes(session, event.episode_ids)


def register(consumers: EventConsumers) -> None:
    consumers.add(EpisodeDeletedV1, on_episode_deleted)
    consumers.add(TitleDeletedV1, on_title_deleted)
