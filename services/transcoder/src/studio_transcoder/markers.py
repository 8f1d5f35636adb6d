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
from studio_transcoder.partstate import EPISODE_DELETED, cancel_episode_jobs

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
    fingerprint: Fingerprint | None,
    tables: MessagingTables = messaging,
) -> None:
    """Stores the episode's fingerprint and publishes the markers of the season
    that changed (the episode's own always, possibly empty).

    Also for a re-transcode: the new fingerprint replaces the old one, and the
    season the episode was in before (when it moved) is detected again too. A
    job without a fingerprint (the new source has no audio, or fingerprinting
    failed) drops the old one: markers found in the old audio would be wrong.

    Events go to ``tables``' outbox (the worker's, when a job completes).
    In a savepoint: markers are a convenience, and a failure here must not undo
    the job's completion that shares the transaction."""
    try:
        async with session.begin_nested():
            await _record_and_detect(session, event, fingerprint, tables)
    except Exception:
        log.exception("markers not detected", extra={"episode_id": str(event.episode_id)})


async def _lock_seasons(session: AsyncSession, *season_ids: uuid.UUID | None) -> None:
    # Always in the same order, so two jobs locking the same two seasons never deadlock.
    for season_id in sorted({s for s in season_ids if s is not None}):
        await session.execute(select(func.pg_advisory_xact_lock(season_lock_key(season_id))))


async def _record_and_detect(
    session: AsyncSession,
    event: EpisodeUploadedV1,
    fingerprint: Fingerprint | None,
    tables: MessagingTables,
) -> None:
    before = await session.scalar(
        select(EpisodeFingerprint.season_id).where(
            EpisodeFingerprint.episode_id == event.episode_id
        )
    )
    await _lock_seasons(session, event.season_id, before)
    row = await session.get(EpisodeFingerprint, event.episode_id, with_for_update=True)
    if fingerprint is None:
        if row is None:
            return
        await session.delete(row)
        await session.flush()
        await _publish(session, tables, event.episode_id, event.season_id, [], row.duration_sec)
        await detect_and_publish(session, row.season_id, tables=tables)
        return
    if row is None:
        row = EpisodeFingerprint(episode_id=event.episode_id, markers=[])
        session.add(row)
    moved_from = row.season_id if row.season_id not in (None, event.season_id) else None
    row.season_id = event.season_id
    row.title_id = event.title_id
    row.season_number = event.season_number
    row.duration_sec = fingerprint.duration
    row.head = pack(fingerprint.head)
    row.tail = pack(fingerprint.tail)
    row.tail_start_sec = fingerprint.tail_start
    await session.flush()
    await detect_and_publish(session, event.season_id, always=event.episode_id, tables=tables)
    if moved_from is not None:
        await detect_and_publish(session, moved_from, tables=tables)


async def _publish(
    session: AsyncSession,
    tables: MessagingTables,
    episode_id: uuid.UUID,
    season_id: uuid.UUID,
    markers: list[dict[str, Any]],
    duration: float,
) -> None:
    await enqueue(
        session,
        tables,
        EpisodeMarkersDetectedV1(
            episode_id=episode_id,
            season_id=season_id,
            markers=[EpisodeMarker.model_validate(m) for m in markers],
            duration_sec=duration,
        ),
    )


async def detect_and_publish(
    session: AsyncSession,
    season_id: uuid.UUID,
    always: uuid.UUID | None = None,
    tables: MessagingTables = messaging,
) -> None:
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
        await _publish(
            session, tables, sibling.episode_id, season_id, markers, sibling.duration_sec
        )


async def forget_episodes(session: AsyncSession, episode_ids: list[uuid.UUID]) -> None:
    """Deleted episodes leave their seasons: the siblings' markers are detected again."""
    # The seasons' locks first, as a job does, then the rows.
    affected = (
        await session.scalars(
            select(EpisodeFingerprint.season_id).where(
                EpisodeFingerprint.episode_id.in_(episode_ids)
            )
        )
    ).all()
    await _lock_seasons(session, *affected)
    seasons = (
        await session.scalars(
            delete(EpisodeFingerprint)
            .where(EpisodeFingerprint.episode_id.in_(episode_ids))
            .returning(EpisodeFingerprint.season_id)
        )
    ).all()
    for season_id in sorted(set(seasons)):
        await detect_and_publish(session, season_id)


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
    """The outstanding parts of a deleted episode's chunked jobs are dropped."""
    await cancel_episode_jobs(
        session, episode_ids, code=EPISODE_DELETED, reason="The episode was deleted."
    )


def register(consumers: EventConsumers) -> None:
    consumers.add(EpisodeDeletedV1, on_episode_deleted)
    consumers.add(TitleDeletedV1, on_title_deleted)
