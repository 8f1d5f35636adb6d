"""The parts of a chunked job, in the caller's transaction (the worker's outbox).

A long source is split into video chunks on the segment grid and side jobs
(audio, images, subtitles), each one row here and one
``transcoder.part.requested`` message on the work queue. The row is the part's
idempotency record: a delivery of a part that is done, cancelled, or belongs
to another attempt's folder is acked and dropped. The job row stays the
episode's state; it is locked (``SELECT ... FOR UPDATE``) whenever a part
lands, so landing parts are counted and stitched one at a time and in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.events import TranscodePartRequestedV1
from studio_common.outbox import enqueue
from studio_transcoder.failures import JobFailure
from studio_transcoder.media.chunks import ChunkSpec
from studio_transcoder.models import CHUNK_KINDS, Job, TranscodePart, worker_messaging
from studio_transcoder.repository import clip_log

FINAL_PART_STATES = ("done", "cancelled")
# Why a chunked job was stopped without failing: never retried, never announced.
SUPERSEDED = "superseded"
EPISODE_DELETED = "episode_deleted"
CANCELLED_CODES = (SUPERSEDED, EPISODE_DELETED)
# Side jobs come right after the head (chunk 0 and the audio, which make the
# episode playable) in this order: subtitles belong in the master, images are
# last because nothing waits for them until ready.
SIDE_KINDS = ("subtitles", "images")


@dataclass(frozen=True)
class PartPlan:
    kind: str
    index: int = 0
    chunk: ChunkSpec | None = None


def ordered_parts(chunks: Sequence[ChunkSpec], side_kinds: Sequence[str]) -> list[PartPlan]:
    """The order the messages go on the queue, which is the order workers take
    them: the head (chunk 0 and the audio) first, then the side jobs, then the
    other chunks in order (so the growing playlists grow without gaps when
    workers keep up)."""
    ordered = sorted(chunks, key=lambda c: c.index)
    video = [PartPlan("head" if c.index == 0 else "video", c.index, c) for c in ordered]
    sides = [PartPlan(kind) for kind in SIDE_KINDS if kind in side_kinds]
    return video[:1] + sides + video[1:]


def queue_order(parts: Sequence[TranscodePart]) -> list[TranscodePart]:
    """Parts in the order :func:`record_plan` queued them (:func:`ordered_parts`);
    a kind that order does not know goes last, by kind and index."""
    chunks = [c for p in parts if (c := chunk_of(p)) is not None]
    plans = ordered_parts(chunks, [p.kind for p in parts if p.kind != "video"])
    rank = {(p.kind, p.index): i for i, p in enumerate(plans)}
    return sorted(parts, key=lambda p: (rank.get((p.kind, p.index), len(rank)), p.kind, p.index))


def chunk_of(part: TranscodePart) -> ChunkSpec | None:
    if part.kind not in CHUNK_KINDS:
        return None
    assert part.start_sec is not None
    assert part.end_sec is not None
    assert part.first_segment is not None
    assert part.segment_count is not None
    return ChunkSpec(
        index=part.index,
        start=part.start_sec,
        end=part.end_sec,
        first_segment=part.first_segment,
        segment_count=part.segment_count,
    )


async def record_plan(
    session: AsyncSession, job: Job, chunks: Sequence[ChunkSpec], side_kinds: Sequence[str]
) -> list[TranscodePart]:
    """The job's parts and their queue messages, in one transaction: either all
    of them are queued or none. Parts of the job's earlier attempts stop."""
    assert job.output_prefix, "a job in progress has its folder"
    await session.execute(
        update(TranscodePart)
        .where(
            TranscodePart.job_id == job.id,
            TranscodePart.output_prefix != job.output_prefix,
            TranscodePart.state.not_in(FINAL_PART_STATES),
        )
        .values(state="cancelled", finished_at=datetime.now(UTC))
    )
    parts: list[TranscodePart] = []
    for plan in ordered_parts(chunks, side_kinds):
        chunk = plan.chunk
        part = TranscodePart(
            id=uuid.uuid4(),
            job_id=job.id,
            output_prefix=job.output_prefix,
            kind=plan.kind,
            index=plan.index,
            start_sec=chunk.start if chunk else None,
            end_sec=chunk.end if chunk else None,
            first_segment=chunk.first_segment if chunk else None,
            segment_count=chunk.segment_count if chunk else None,
            state="queued",
            attempts=0,
        )
        session.add(part)
        parts.append(part)
    await session.flush()
    # One enqueue per part, in queue order: the relay publishes in that order.
    for part in parts:
        await enqueue(
            session,
            worker_messaging,
            TranscodePartRequestedV1(
                part_id=part.id,
                job_id=job.id,
                episode_id=job.episode_id,
                kind=part.kind,
                index=part.index,
                hls_prefix=job.output_prefix,
            ),
        )
    return parts


async def has_parts(session: AsyncSession, job: Job) -> bool:
    """Whether the job's current attempt was split into parts (its job message is done)."""
    if not job.output_prefix:
        return False
    found = await session.scalar(
        select(TranscodePart.id)
        .where(TranscodePart.job_id == job.id, TranscodePart.output_prefix == job.output_prefix)
        .limit(1)
    )
    return found is not None


async def parts_of(session: AsyncSession, job: Job, *, lock: bool = False) -> list[TranscodePart]:
    stmt = (
        select(TranscodePart)
        .where(TranscodePart.job_id == job.id, TranscodePart.output_prefix == job.output_prefix)
        .order_by(TranscodePart.kind, TranscodePart.index)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update()
    return list((await session.scalars(stmt)).all())


async def get_part(
    session: AsyncSession, part_id: uuid.UUID, *, lock: bool = False
) -> TranscodePart | None:
    stmt = (
        select(TranscodePart)
        .where(TranscodePart.id == part_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


def current(part: TranscodePart | None, job: Job | None) -> bool:
    """Whether a part still has to run: not final, and of the job's current attempt."""
    return (
        part is not None
        and job is not None
        and part.state not in FINAL_PART_STATES
        and job.status == "processing"
        and job.output_prefix == part.output_prefix
    )


def begin_part(part: TranscodePart) -> None:
    part.attempts += 1
    part.state = "processing"
    part.started_at = datetime.now(UTC)
    part.error_code = part.error_reason = None


def part_failed(part: TranscodePart, failure: JobFailure) -> None:
    """Queued again for its redelivery; the attempt counts."""
    part.state = "queued"
    part.error_code = failure.code
    part.error_reason = clip_log(failure.reason)


def hand_back_part(part: TranscodePart) -> None:
    """The worker stops (or storage went away) before the part finished: the
    attempt does not count."""
    part.state = "queued"
    part.attempts = max(0, part.attempts - 1)


def part_done(part: TranscodePart, result: dict[str, Any], encode_seconds: float) -> None:
    part.state = "done"
    part.result = result
    part.encode_seconds = round(encode_seconds, 3)
    part.finished_at = datetime.now(UTC)
    part.error_code = part.error_reason = None


async def cancel_parts(session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> int:
    """Every part of these jobs that has not finished: their messages are acked
    and dropped when they arrive, and a worker encoding one stops."""
    if not job_ids:
        return 0
    result = await session.execute(
        update(TranscodePart)
        .where(
            TranscodePart.job_id.in_(list(job_ids)),
            TranscodePart.state.not_in(FINAL_PART_STATES),
        )
        .values(state="cancelled", finished_at=datetime.now(UTC))
        .returning(TranscodePart.id)
    )
    return len(result.all())


async def cancel_episode_jobs(
    session: AsyncSession,
    episode_ids: Sequence[uuid.UUID],
    *,
    code: str,
    reason: str,
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Stops the chunked jobs of these episodes still in progress (all but
    ``keep``): a newer upload supersedes them, or the episode is gone.

    The job ends ``failed`` with ``code`` but announces nothing: no consumer
    has to react to a job nobody waits for any more (the newer job's
    ``transcode.started`` retires the folder at media; a deleted episode has
    nothing left to update)."""
    if not episode_ids:
        return []
    chunked = select(TranscodePart.job_id).where(
        TranscodePart.job_id == Job.id, TranscodePart.output_prefix == Job.output_prefix
    )
    stmt = (
        select(Job)
        .where(
            Job.episode_id.in_(list(episode_ids)),
            Job.status.in_(("queued", "processing")),
            chunked.exists(),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if keep is not None:
        stmt = stmt.where(Job.id != keep)
    jobs = list((await session.scalars(stmt)).all())
    for job in jobs:
        job.status = "failed"
        job.finished_at = datetime.now(UTC)
        job.error_code = code
        job.error_reason = reason
    await cancel_parts(session, [j.id for j in jobs])
    return [j.id for j in jobs]
