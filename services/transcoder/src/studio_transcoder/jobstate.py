"""The job row's transitions, each with the event it announces, in the caller's
transaction (the worker's outbox): the row is the job's idempotency record, one
per episode and source, whatever the deliveries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.db import Database
from studio_common.events import (
    EpisodeUploadedV1,
    EventPayload,
    TranscodeCompletedV1,
    TranscodeFailedV1,
    TranscodeRetryRequestedV1,
    TranscodeStartedV1,
)
from studio_common.jobs import JobMessage
from studio_common.outbox import enqueue
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import JobFailure, TransientFailure
from studio_transcoder.markers import record_and_detect
from studio_transcoder.models import Job, worker_messaging
from studio_transcoder.naming import new_version, output_prefix
from studio_transcoder.partstate import has_parts
from studio_transcoder.pipeline import AttemptResult
from studio_transcoder.repository import JobRepository, clip_log


def retry_delay(settings: TranscoderSettings, attempts: int) -> float:
    """Seconds before transient retry ``attempts``: the backoff doubling from its base."""
    return float(settings.retry_backoff_seconds * 2.0 ** max(0, attempts - 1))


def lock_wait(settings: TranscoderSettings, num_delivered: int) -> float:
    """Seconds before looking again at an episode another worker runs."""
    return float(min(300.0, settings.worker_ack_wait_seconds * 2 ** min(num_delivered - 1, 5)))


@asynccontextmanager
async def job_row(
    database: Database, job_id: uuid.UUID, *, processing: bool = False
) -> AsyncIterator[tuple[AsyncSession, Job | None]]:
    """The job's row, locked, in a transaction of its own; None when it is gone
    (or, with ``processing``, no longer being processed)."""
    async with database.transaction() as session:
        row = await JobRepository(session).get(job_id, lock=True)
        if processing and row is not None and row.status != "processing":
            row = None
        yield session, row


def advisory_key(episode_id: uuid.UUID) -> int:
    return int.from_bytes(episode_id.bytes[:8], "big", signed=True)


@asynccontextmanager
async def episode_lock(database: Database, episode_id: uuid.UUID) -> AsyncIterator[bool]:
    """The episode's advisory lock, held on a connection of its own for the whole
    attempt (a dead worker's connection closes and its lock goes with it);
    False when another worker holds it."""
    key = advisory_key(episode_id)
    async with database.engine.connect() as conn:
        locked = bool(await conn.scalar(select(func.pg_try_advisory_lock(key))))
        await conn.commit()
        try:
            yield locked
        finally:
            if locked:
                try:
                    await conn.scalar(select(func.pg_advisory_unlock(key)))
                    await conn.commit()
                except Exception:
                    # Never hand a connection that may still hold the lock back to the pool.
                    await conn.invalidate()
                    raise


async def admitted(session: AsyncSession, event_id: uuid.UUID, payload: EventPayload) -> Job | None:
    """The job a delivery asks to run, or None when there is nothing to run:
    a redelivery of a finished job, an event whose pending delivery runs it, a
    retry of a job that is not queued."""
    repo = JobRepository(session)
    if isinstance(payload, EpisodeUploadedV1):
        data = payload.model_dump(mode="json", by_alias=True)
        job = await repo.admit(
            episode_id=payload.episode_id,
            source_key=payload.source_key,
            event_id=event_id,
            payload=data,
        )
        if job.source_event_id != event_id:
            if job.status in ("queued", "processing"):
                return None  # the pending delivery of that event runs it
            # A new upload of the same source: transcode it again.
            job.source_event_id = event_id
            job.payload = data
            job.requeue()
        elif job.status in ("ready", "failed"):
            return None  # a redelivery of a finished job
        return job
    if isinstance(payload, TranscodeRetryRequestedV1):
        found = await repo.get(payload.job_id, lock=True)
        return found if found is not None and found.status == "queued" else None
    return None


async def claim(
    session: AsyncSession, message: JobMessage, settings: TranscoderSettings
) -> tuple[Job | None, bool]:
    """The job this delivery runs (its attempt begun), and whether it was given
    up instead: earlier attempts or deliveries ran out without an outcome (the
    worker died each time), so the job failed."""
    job = await admitted(session, message.envelope.id, message.payload)
    if job is None:
        return None, False
    if job.status == "processing" and await has_parts(session, job):
        # Redelivered after the job was split: its parts carry it on.
        return None, False
    delivered = message.num_delivered
    if job.attempts < settings.max_attempts and delivered < settings.worker_max_deliver:
        await begin_attempt(session, job)
        return job, False
    reason = (
        f"Gave up after {job.attempts} attempts and {delivered} deliveries. "
        f"Last error: {job.error_reason or 'the worker stopped during every attempt'}"
    )
    await mark_failed(session, job, TransientFailure("gave_up", reason))
    return job, True


async def begin_attempt(session: AsyncSession, job: Job) -> None:
    job.attempts += 1
    job.status = "processing"
    job.started_at = datetime.now(UTC)
    job.finished_at = None
    job.progress = 0.0
    job.playable = False
    job.error_code = job.error_reason = None
    job.chunk_plan = None
    await start_in_new_folder(session, job)


async def start_in_new_folder(session: AsyncSession, job: Job) -> None:
    """Every attempt writes a folder of its own, announced with its start: what an
    earlier one left (and what media serves) is never overwritten."""
    job.output_prefix = output_prefix(job.episode_id, new_version())
    await enqueue(
        session,
        worker_messaging,
        TranscodeStartedV1(
            episode_id=job.episode_id,
            job_id=job.id,
            attempt=job.attempts,
            hls_prefix=job.output_prefix,
        ),
    )


async def restart_attempt(session: AsyncSession, job: Job) -> None:
    """The same attempt again after a storage outage, uncounted, in a new folder."""
    job.progress = 0.0
    job.playable = False
    await start_in_new_folder(session, job)


async def mark_failed(
    session: AsyncSession, job: Job, failure: JobFailure, log_tail: str | None = None
) -> None:
    job.status = "failed"
    job.finished_at = datetime.now(UTC)
    job.error_code = failure.code
    job.error_reason = failure.reason
    job.log_tail = clip_log(log_tail or failure.log_tail or job.log_tail)
    await enqueue(
        session,
        worker_messaging,
        TranscodeFailedV1(
            episode_id=job.episode_id,
            job_id=job.id,
            reason=failure.reason,
            permanent=failure.permanent,
            log_tail=job.log_tail,
            code=failure.code,
            hls_prefix=job.output_prefix,
        ),
    )


def queue_for_retry(job: Job, failure: JobFailure, log_tail: str | None) -> None:
    job.status = "queued"
    job.error_code = failure.code
    job.error_reason = failure.reason
    job.log_tail = log_tail


def hand_back(job: Job, log_tail: str | None) -> None:
    """Queued again, and the attempt that was running does not count."""
    job.status = "queued"
    job.attempts = max(0, job.attempts - 1)
    job.log_tail = log_tail


async def complete(
    session: AsyncSession, job: Job, result: AttemptResult, log_tail: str | None
) -> None:
    job.status = "ready"
    job.progress = 100.0
    job.playable = True
    job.finished_at = datetime.now(UTC)
    job.media_duration_sec = result.duration
    job.encode_seconds = round(result.encode_seconds, 3)
    job.log_tail = log_tail
    job.result = _result(result)
    await enqueue(
        session,
        worker_messaging,
        TranscodeCompletedV1(
            episode_id=job.episode_id,
            job_id=job.id,
            hls_master_key=result.master_key,
            hls_master_url=result.master_url,
            duration_sec=result.duration,
            renditions=result.renditions,
            thumbnails=result.thumbnails,
            subtitles=result.subtitles,
        ),
    )
    # Without a fingerprint too: a re-transcode drops the old one and its markers.
    await record_and_detect(
        session,
        EpisodeUploadedV1.model_validate(job.payload),
        result.fingerprint,
        worker_messaging,
    )


def _result(result: AttemptResult) -> dict[str, Any]:
    return {
        "hlsMasterKey": result.master_key,
        "hlsMasterUrl": result.master_url,
        "renditions": result.renditions,
        "audioLanguages": result.audio_languages,
        "thumbnails": result.thumbnails,
        "subtitles": [s.model_dump(mode="json", by_alias=True) for s in result.subtitles],
        "secondsToPlayable": result.seconds_to_playable,
        "sourceStreamed": result.source_streamed,
    }
