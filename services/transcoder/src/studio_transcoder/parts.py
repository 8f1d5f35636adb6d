"""Chunked jobs on the work queue: splitting a job into parts, and running one part.

The job's handler probes the source as every attempt does; when
:func:`~studio_transcoder.media.chunks.plan_chunks` splits it, the parts and
their ``transcoder.part.requested`` messages are written in one transaction
and the job's message is acked (:meth:`PartRunner.split`). Any worker then
takes a part (:meth:`PartRunner.handle`): it encodes it with
:func:`~studio_transcoder.chunked.encode_part`, and, under the job row's lock,
marks it done, rewrites the stitched playlists (only chunks contiguous from
chunk 0 are listed, so a chunk that lands early waits for its predecessors),
announces playable once chunk 0 and the audio are in, progress as parts done
over all parts, and at the last part the same completion as a one-pass job.

A part fails alone: a transient failure is retried (its message naked with the
job's backoff) until ``max_attempts`` of that part, which fails the job; a
worker that dies loses only its part (JetStream redelivers it after
``ack_wait``). A part found cancelled (the episode re-uploaded or deleted), of
an earlier attempt, or already done, is acked and dropped; one being encoded
when that happens is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.db import Database
from studio_common.events import (
    EpisodeUploadedV1,
    TranscodePartRequestedV1,
    TranscodePlayableV1,
    TranscodeProgressV1,
)
from studio_common.jobs import JobMessage
from studio_common.outbox import enqueue
from studio_common.telemetry import report_exception
from studio_transcoder import jobstate, partstate
from studio_transcoder.chunked import (
    PartResult,
    encode_part,
    plan_from_json,
    plan_to_json,
    playable,
    publish_stitched,
    stitched_result,
)
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import JobFailure, TransientFailure
from studio_transcoder.jobstate import job_row, retry_delay
from studio_transcoder.media.chunks import plan_chunks
from studio_transcoder.media.ladder import LadderPlan
from studio_transcoder.media.probe import SourceInfo
from studio_transcoder.metrics import WorkerMetrics
from studio_transcoder.models import Job, TranscodePart, worker_messaging
from studio_transcoder.outage import StorageGate
from studio_transcoder.pipeline import AttemptResult
from studio_transcoder.reporting import JobReporter
from studio_transcoder.repository import clip_log
from studio_transcoder.storage import ObjectStore
from studio_transcoder.workdirs import new_workdir

log = logging.getLogger("studio.transcoder.worker")


@dataclass
class _Claimed:
    part_id: uuid.UUID
    job_id: uuid.UUID
    kind: str
    index: int
    attempts: int
    prefix: str
    event: EpisodeUploadedV1
    plan: LadderPlan
    # Plans from before the video stream was kept: the part probes again.
    video_index: int | None
    chunk: Any


class PartRunner:
    def __init__(
        self,
        settings: TranscoderSettings,
        database: Callable[[], Database],
        store: ObjectStore,
        gate: StorageGate,
        metrics: WorkerMetrics,
    ) -> None:
        self.settings = settings
        self._database = database
        self.store = store
        self.gate = gate
        self.metrics = metrics

    @property
    def database(self) -> Database:
        return self._database()

    # --- splitting a job ----------------------------------------------------

    async def split(
        self, job: Job, reporter: JobReporter, info: SourceInfo, plan: LadderPlan
    ) -> bool:
        """Splits the attempt into parts when the source is long enough; True
        when the job's message is done (split, or the job no longer runs)."""
        chunks = plan_chunks(info.duration, self.settings)
        if not chunks:
            return False
        # Every side part, even with nothing to encode (no audio, no subtitles):
        # the stitched master waits for each, and an empty one costs a probe.
        sides = list(partstate.SIDE_KINDS)
        reporter.note(
            f"split into {len(chunks)} chunks of up to {self.settings.chunk_segments} segments "
            f"and {', '.join(sorted(sides))}"
        )
        async with job_row(self.database, job.id, processing=True) as (session, row):
            if row is None or row.output_prefix != job.output_prefix:
                return True
            row.media_duration_sec = info.duration
            row.chunk_plan = {
                "ladder": plan_to_json(plan),
                "videoIndex": info.video.index,
                "duration": info.duration,
                "chunks": len(chunks),
                "sourceStreamed": self.settings.source_access != "download",
            }
            row.log_tail = reporter.log()
            await partstate.record_plan(session, row, chunks, sides)
        self.metrics.attempts.labels("split").inc()
        return True

    # --- one part -----------------------------------------------------------

    async def handle(self, message: JobMessage) -> None:
        request: TranscodePartRequestedV1 = message.payload  # type: ignore[assignment]
        claimed = await self._claim(message, request)
        if claimed is None:
            if not message.settled:
                await message.ack()
            return
        self.metrics.running.inc()
        log.info("part started", extra={**_extra(claimed), "attempt": claimed.attempts})
        try:
            await self._run(message, claimed)
        finally:
            self.metrics.running.dec()

    async def _claim(
        self, message: JobMessage, request: TranscodePartRequestedV1
    ) -> _Claimed | None:
        """Begins the part's attempt, or None when there is nothing to run."""
        s = self.settings
        async with job_row(self.database, request.job_id) as (session, job):
            part = await partstate.get_part(session, request.part_id, lock=True)
            if not partstate.current(part, job):
                return None
            assert part is not None
            assert job is not None
            assert job.chunk_plan is not None
            failure: JobFailure | None = None
            if part.attempts >= s.max_attempts or message.num_delivered >= s.worker_max_deliver:
                # Every attempt so far ended without an outcome (the worker died).
                failure = TransientFailure(
                    "gave_up",
                    f"Gave up on {_name(part)} after {part.attempts} attempts and "
                    f"{message.num_delivered} deliveries. Last error: "
                    f"{part.error_reason or 'the worker stopped during every attempt'}",
                )
                await self._fail_job(session, job, failure)
            else:
                partstate.begin_part(part)
                claimed = _Claimed(
                    part_id=part.id,
                    job_id=job.id,
                    kind=part.kind,
                    index=part.index,
                    attempts=part.attempts,
                    prefix=part.output_prefix,
                    event=EpisodeUploadedV1.model_validate(job.payload),
                    plan=plan_from_json(job.chunk_plan["ladder"]),
                    video_index=job.chunk_plan.get("videoIndex"),
                    chunk=partstate.chunk_of(part),
                )
        if failure is not None:
            self.metrics.attempts.labels("failed").inc()
            await message.dead_letter(f"gave up: {failure.reason}")
            await self.store.discard(request.hls_prefix)
            return None
        return claimed

    async def _run(self, message: JobMessage, part: _Claimed) -> None:
        workdir = new_workdir(self.settings.work_dir, part.part_id)
        outages = self.gate.outages
        started = time.monotonic()
        encode = asyncio.create_task(
            encode_part(
                self.settings,
                self.store,
                part.event,
                part.prefix,
                workdir,
                part.kind,
                part.chunk,
                plan=part.plan,
                video_index=part.video_index,
                on_playable=lambda key: self._playable(part, key),
            ),
            name=f"part-{part.kind}-{part.index}",
        )
        watch = asyncio.create_task(self._watch(part.part_id, part.job_id))
        try:
            await asyncio.wait({encode, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not encode.done():
                # Cancelled meanwhile (a re-upload, a deletion, the job failed).
                await _stop(encode)
                log.info("part cancelled while encoding", extra=_extra(part))
                await message.ack()
                return
            result = encode.result()
            await self._land(message, part, result, time.monotonic() - started)
        except JobFailure as failure:
            if await self.gate.broke(failure, outages):
                await self._after_outage(message, part)
            else:
                await self._failed(message, part, failure)
        except asyncio.CancelledError:
            await _stop(encode)
            await self._hand_back(message, part)
            raise
        except Exception as exc:
            log.exception("part crashed", extra=_extra(part))
            report_exception(exc)
            await self._failed(
                message, part, TransientFailure("internal", f"Unexpected error: {exc!r}")
            )
        finally:
            watch.cancel()
            await _stop(encode)
            shutil.rmtree(workdir, ignore_errors=True)

    async def _watch(self, part_id: uuid.UUID, job_id: uuid.UUID) -> None:
        """Returns once the part no longer has to run."""
        interval = max(0.5, min(5.0, self.settings.worker_ack_wait_seconds / 3))
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.database.transaction() as session:
                    part = await partstate.get_part(session, part_id)
                    job = await session.get(Job, job_id, populate_existing=True)
                    if not partstate.current(part, job):
                        return
            except Exception:
                # The database away is not a cancellation; the landing step will know.
                log.warning("could not look at the part's state", exc_info=True)

    @contextlib.asynccontextmanager
    async def _current_part(
        self, message: JobMessage, claimed: _Claimed
    ) -> AsyncIterator[tuple[AsyncSession, Job, TranscodePart] | None]:
        """The claimed part and its job, locked in one transaction; None, with the
        message acked, when the part no longer has to run (final, or of an older
        attempt of the job)."""
        async with job_row(self.database, claimed.job_id) as (session, job):
            part = await partstate.get_part(session, claimed.part_id, lock=True)
            if not partstate.current(part, job):
                await message.ack()
                yield None
                return
            assert part is not None
            assert job is not None
            yield session, job, part

    async def _land(
        self, message: JobMessage, claimed: _Claimed, result: PartResult, seconds: float
    ) -> None:
        """Marks the part done and stitches, in one transaction under the job's lock."""
        async with self._current_part(message, claimed) as locked:
            if locked is None:
                return
            session, job, part = locked
            partstate.part_done(part, result.to_json(), seconds)
            _note(job, f"{_name(part)} done in {seconds:.1f} s (attempt {part.attempts})")
            await session.flush()
            parts = await partstate.parts_of(session, job)
            completed = await self._stitch(session, job, parts)
        await message.ack()
        log.info("part done", extra={**_extra(claimed), "seconds": round(seconds, 2)})
        if completed is not None:
            self.metrics.record_ready(completed)
            log.info("job ready", extra={"job_id": str(claimed.job_id)})

    async def _stitch(
        self, session: Any, job: Job, parts: Sequence[TranscodePart]
    ) -> AttemptResult | None:
        """The playlists, progress, playable and (at the last part) the completion."""
        assert job.chunk_plan is not None
        assert job.output_prefix is not None
        plan = plan_from_json(job.chunk_plan["ladder"])
        done = [p for p in parts if p.state == "done"]
        final = len(done) == len(parts)
        results = [PartResult.from_json(p.result or {}) for p in done]
        if not (final or playable(plan, results)):
            # Nothing a player could start with yet: no playlist to write.
            await self._progress(session, job, len(done), len(parts))
            return None
        master_key = await publish_stitched(
            self.settings, self.store, job.output_prefix, plan, results, final=final
        )
        await self._announce_playable(session, job, master_key, plan)
        if not final:
            await self._progress(session, job, len(done), len(parts))
            return None
        cdn = self.settings.cdn_base_url
        result = stitched_result(
            plan,
            results,
            master_key=master_key,
            master_url=f"{cdn.rstrip('/')}/{master_key}" if cdn else None,
            seconds_to_playable=job.chunk_plan.get("secondsToPlayable"),
        )
        await jobstate.complete(session, job, result, job.log_tail)
        return result

    async def _playable(self, claimed: _Claimed, master_key: str) -> None:
        """The head's first segments and the master are in storage: the episode
        is playable while the head still encodes (announced once per job)."""
        async with job_row(self.database, claimed.job_id) as (session, job):
            part = await partstate.get_part(session, claimed.part_id)
            if not partstate.current(part, job):
                return
            assert job is not None
            await self._announce_playable(session, job, master_key, claimed.plan)
        log.info("playable while the part encodes", extra=_extra(claimed))

    async def _announce_playable(
        self, session: Any, job: Job, master_key: str, plan: LadderPlan
    ) -> None:
        if job.playable:
            return
        assert job.chunk_plan is not None
        job.playable = True
        waited = (datetime.now(UTC) - job.started_at).total_seconds() if job.started_at else None
        job.chunk_plan = {**job.chunk_plan, "secondsToPlayable": waited}
        await enqueue(
            session,
            worker_messaging,
            TranscodePlayableV1(
                episode_id=job.episode_id,
                job_id=job.id,
                hls_master_key=master_key,
                renditions=[v.name for v in plan.video],
            ),
        )

    async def _progress(self, session: Any, job: Job, done: int, total: int) -> None:
        percent = round(min(99.0, 100.0 * done / total), 2)
        if percent <= job.progress:
            return
        job.progress = percent
        await enqueue(
            session,
            worker_messaging,
            TranscodeProgressV1(
                episode_id=job.episode_id, job_id=job.id, percent=percent, playable=job.playable
            ),
        )

    # --- when a part does not finish ---------------------------------------

    async def _failed(self, message: JobMessage, claimed: _Claimed, failure: JobFailure) -> None:
        self.metrics.failures.labels(failure.code, str(failure.permanent).lower()).inc()
        log.warning(
            "part failed", extra={**_extra(claimed), "code": failure.code, "reason": failure.reason}
        )
        retry = not failure.permanent and claimed.attempts < self.settings.max_attempts
        async with self._current_part(message, claimed) as locked:
            if locked is None:
                return
            session, job, part = locked
            partstate.part_failed(part, failure)
            _note(job, f"{_name(part)} failed (attempt {part.attempts}): {failure.reason}")
            if not retry:
                await self._fail_job(session, job, failure)
        if retry:
            self.metrics.attempts.labels("part_retried").inc()
            await message.nak(delay=retry_delay(self.settings, claimed.attempts))
            return
        self.metrics.attempts.labels("failed").inc()
        await self.store.discard(claimed.prefix)
        if failure.permanent:
            await message.ack()
        else:
            await message.dead_letter(
                f"gave up after {claimed.attempts} attempts of {claimed.kind} "
                f"{claimed.index}: {failure.reason}"
            )

    async def _fail_job(self, session: Any, job: Job, failure: JobFailure) -> None:
        """The job fails with the part: every other part stops."""
        await partstate.cancel_parts(session, [job.id])
        await jobstate.mark_failed(session, job, failure, job.log_tail)

    async def _after_outage(self, message: JobMessage, claimed: _Claimed) -> None:
        """Storage, not the part, broke it: uncounted, and back on the queue once
        storage answers (or at once, for another worker, past the tolerance)."""
        remaining = self.gate.remaining(self.settings.storage_outage_tolerance_seconds)
        try:
            answered = await self.gate.wait_up(remaining)
        except asyncio.CancelledError:
            # Stopped while waiting: outside _run's own hand-back, so here.
            await self._hand_back(message, claimed)
            raise
        # One outcome per attempt: redone once storage answered, else handed back.
        await self._hand_back(
            message, claimed, "redone_after_outage" if answered else "handed_back"
        )

    async def _hand_back(
        self, message: JobMessage, claimed: _Claimed, outcome: str = "handed_back"
    ) -> None:
        with contextlib.suppress(Exception):
            async with job_row(self.database, claimed.job_id) as (session, _):
                part = await partstate.get_part(session, claimed.part_id, lock=True)
                if part is not None and part.state == "processing":
                    partstate.hand_back_part(part)
        with contextlib.suppress(Exception):
            await message.nak()
        self.metrics.attempts.labels(outcome).inc()


def _name(part: TranscodePart) -> str:
    if part.kind == "head":
        return "chunk 0 and the audio"
    return f"chunk {part.index}" if part.kind == "video" else f"{part.kind} part"


def _extra(part: _Claimed) -> dict[str, str]:
    return {"job_id": str(part.job_id), "part": f"{part.kind}:{part.index}"}


def _note(job: Job, line: str) -> None:
    job.log_tail = clip_log(f"{job.log_tail}\n{line}" if job.log_tail else line)


async def _stop(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
