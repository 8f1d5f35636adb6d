"""The worker process: ``catalog.episode.uploaded`` (and retry requests) as a work
queue, on the common runtime and its job consumer (:mod:`studio_common.jobs`:
in-progress acks, hand-back on SIGTERM, dead letters). What is left here is the
job: claim it under the episode's advisory lock, run the attempt (ffmpeg,
storage), record the outcome; each job-state change commits with its event in
the worker's own outbox, which the worker's relay publishes.

Outcomes: ready → ack; a permanent failure (the file) → failed, ack; a
transient one → nak with exponential backoff until ``max_attempts``, then
failed and dead-lettered; SIGTERM → the running job gets a grace period, then
is handed back (nak) without counting as an attempt.

Storage going away is not the job's failure (:mod:`studio_transcoder.outage`):
intake waits for storage, and an attempt the outage broke is redone in a new
folder, uncounted, within ``storage_outage_tolerance_seconds`` per outage;
past that the job is handed back, still uncounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import uuid
from contextlib import AsyncExitStack

from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from studio_common.db import Database
from studio_common.events import (
    EpisodeUploadedV1,
    EventPayload,
    TranscodePartRequestedV1,
    TranscodeRetryRequestedV1,
)
from studio_common.jobs import JobConsumer, JobMessage
from studio_common.probes import Liveness, ProbeServer, serve_probes
from studio_common.runtime import Runtime, ServiceRuntime
from studio_common.telemetry import report_exception
from studio_transcoder import jobstate, partstate
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import JobFailure, TransientFailure
from studio_transcoder.jobstate import advisory_key, job_row, lock_wait, retry_delay
from studio_transcoder.media.ladder import LadderPlan
from studio_transcoder.media.probe import SourceInfo
from studio_transcoder.metrics import WorkerMetrics
from studio_transcoder.models import Job, worker_messaging
from studio_transcoder.outage import StorageGate
from studio_transcoder.parts import PartRunner
from studio_transcoder.pipeline import TranscodeAttempt
from studio_transcoder.reporting import JobReporter, ProgressThrottle
from studio_transcoder.storage import ObjectStore
from studio_transcoder.workdirs import new_workdir, remove_orphaned_workdirs

__all__ = ["ProgressThrottle", "Worker", "advisory_key", "durable_name", "retry_delay"]

log = logging.getLogger("studio.transcoder.worker")

PROCESS = "transcoder-worker"
# The parts of chunked jobs share the work queue (and the operator's count of it).
JOB_EVENTS: tuple[type[EventPayload], ...] = (
    EpisodeUploadedV1,
    TranscodeRetryRequestedV1,
    TranscodePartRequestedV1,
)


def durable_name(event_type: str) -> str:
    return f"{PROCESS}-{event_type.replace('.', '-')}"


class Worker:
    def __init__(
        self, settings: TranscoderSettings, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry)
        self.service: ServiceRuntime[None] = ServiceRuntime(
            settings,
            name=PROCESS,
            tables=worker_messaging,
            verify_tokens=False,
            registry=self.registry,
            pool_size=settings.worker_pool_size,
        )
        self.service.nats_link  # noqa: B018 (the gauge answers 0 before the connection)
        self.runtime: Runtime[None] | None = None
        self.consumer: JobConsumer | None = None
        self.store = ObjectStore(settings)
        self.gate: StorageGate = self.store.gate_for()
        self.parts = PartRunner(
            settings, lambda: self.database, self.store, self.gate, self.metrics
        )
        self._stack = AsyncExitStack()
        self._stopping = asyncio.Event()
        self._metrics_server: ProbeServer | None = None
        self._closed = False

    @property
    def database(self) -> Database:
        assert self.runtime is not None, "the worker has not started"
        return self.runtime.database

    @property
    def js(self) -> JetStreamContext:
        assert self.runtime is not None, "the worker has not started"
        return self.runtime.js

    async def start(self) -> None:
        s = self.settings
        if self._metrics_server is None:
            # Before anything else: liveness and metrics answer before any job is taken.
            self._metrics_server = serve_metrics(s, self.registry, self.liveness)
        remove_orphaned_workdirs(s.work_dir)
        self.runtime = await self._stack.enter_async_context(self.service.run())
        self.metrics.storage_up.set(1)
        self.gate.on_change = lambda up: self.metrics.storage_up.set(1 if up else 0)
        self.consumer = JobConsumer(
            self.runtime,
            self._handle,
            events=JOB_EVENTS,
            concurrency=s.worker_concurrency,
            ack_wait=s.worker_ack_wait_seconds,
            max_deliver=s.worker_max_deliver,
            fetch_timeout=s.worker_fetch_timeout_seconds,
            liveness_seconds=s.worker_liveness_seconds,
            # Intake waits while storage is away: a job taken now would only wait too.
            intake=self.gate.wait_up,
            intake_wait=s.storage_probe_max_seconds,
            on_dead_letter=self.metrics.dead_letters.inc,
        )
        await self.consumer.start()
        log.info("transcoder worker started", extra={"concurrency": s.worker_concurrency})

    def liveness(self) -> str | None:
        """Why the worker should be restarted (asked from the probe thread)."""
        return self.consumer.liveness() if self.consumer is not None else None

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Stops pulling, gives running jobs the grace period, then hands them back."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self.consumer is not None:
            await self.consumer.stop(
                self.settings.shutdown_grace_seconds if grace is None else grace
            )
        if self._metrics_server is not None:
            self._metrics_server.close()
        await self.gate.close()
        await self._stack.aclose()
        log.info("transcoder worker stopped")

    # --- one message --------------------------------------------------------

    async def _handle(self, message: JobMessage) -> None:
        if isinstance(message.payload, TranscodePartRequestedV1):
            # Parts of one episode run on many workers at once: no episode lock.
            await self.parts.handle(message)
            return
        episode_id: uuid.UUID = message.payload.episode_id  # type: ignore[attr-defined]
        async with jobstate.episode_lock(self.database, episode_id) as locked:
            if not locked:
                # Another worker runs this episode; look again later, backing off.
                await message.nak(delay=lock_wait(self.settings, message.num_delivered))
                return
            job = await self._claim(message)
            if job is None:
                if not message.settled:
                    await message.ack()
                return
            await self._run(message, job)

    async def _claim(self, message: JobMessage) -> Job | None:
        """Decides, under the episode lock, whether this delivery runs an attempt."""
        async with self.database.transaction() as session:
            job, gave_up = await jobstate.claim(session, message, self.settings)
            if job is not None and not gave_up:
                # A newer upload (or a retry) supersedes the episode's chunked jobs.
                await partstate.cancel_episode_jobs(
                    session,
                    [job.episode_id],
                    code=partstate.SUPERSEDED,
                    reason="A newer upload or retry of the episode superseded this job.",
                    keep=job.id,
                )
        if gave_up:
            self.metrics.attempts.labels("failed").inc()
            await message.dead_letter(f"gave up: {job.error_reason if job else ''}")
            return None
        return job

    async def _run(self, message: JobMessage, job: Job) -> None:
        event = EpisodeUploadedV1.model_validate(job.payload)
        reporter = JobReporter(self.database, self.settings, job.id, job.episode_id)
        reporter.note(f"attempt {job.attempts} of {self.settings.max_attempts} started")
        self.metrics.running.inc()
        try:
            while await self._attempt(message, job, event, reporter) == "outage":
                # The outage, not the job, broke the attempt: redo it, uncounted.
                try:
                    redone = await self._redo_after_outage(job, reporter)
                except asyncio.CancelledError:
                    await self._hand_back(
                        message, job, reporter, "the worker shut down while storage was away"
                    )
                    raise
                if not redone:
                    await self._hand_back(
                        message, job, reporter, "storage stayed unreachable past the tolerance"
                    )
                    return
        finally:
            self.metrics.running.dec()

    async def _attempt(
        self, message: JobMessage, job: Job, event: EpisodeUploadedV1, reporter: JobReporter
    ) -> str:
        """Runs the attempt once; "done", or "outage" when storage going away broke it."""
        assert job.output_prefix, "a claimed job has its folder"
        workdir = new_workdir(self.settings.work_dir, job.id)
        outages = self.gate.outages
        attempt = TranscodeAttempt(
            self.settings, self.store, event, workdir, reporter, job.output_prefix
        )

        async def split(info: SourceInfo, plan: LadderPlan) -> bool:
            # plan_chunks answers no chunks when chunking is off or the source short.
            return await self.parts.split(job, reporter, info, plan)

        try:
            result = await attempt.run(split=split)
        except JobFailure as failure:
            if await self.gate.broke(failure, outages):
                reporter.note(f"storage unreachable during the attempt: {failure.reason}")
                return "outage"
            await self._after_failure(message, job, failure, reporter)
        except asyncio.CancelledError:
            await self._hand_back(
                message, job, reporter, "the worker shut down before the job finished"
            )
            raise
        except Exception as exc:
            log.exception("attempt crashed", extra={"job_id": str(job.id)})
            report_exception(exc)
            unexpected = TransientFailure("internal", f"Unexpected error in the worker: {exc!r}")
            await self._after_failure(message, job, unexpected, reporter)
        else:
            if result is None:
                # Split into parts, which are on the queue now.
                await message.ack()
                return "done"
            if result.source_streamed and self.gate.outages != outages:
                # ffmpeg may take a source cut short by the outage for its end.
                reporter.note("storage was unreachable while the source streamed")
                return "outage"
            async with job_row(self.database, job.id) as (session, row):
                assert row is not None
                await jobstate.complete(session, row, result, reporter.log(result.log_tail))
            await message.ack()
            self.metrics.record_ready(result)
            log.info("job ready", extra={"job_id": str(job.id), "seconds": result.encode_seconds})
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return "done"

    async def _redo_after_outage(self, job: Job, reporter: JobReporter) -> bool:
        """Waits (within the tolerance) for storage, then starts the same attempt
        again in a new folder; False when storage stayed away."""
        remaining = self.gate.remaining(self.settings.storage_outage_tolerance_seconds)
        if not await self.gate.wait_up(remaining):
            return False
        await self.store.discard(job.output_prefix)
        async with job_row(self.database, job.id, processing=True) as (session, row):
            if row is None:
                return False
            await jobstate.restart_attempt(session, row)
            job.output_prefix = row.output_prefix
        reporter.restart()
        reporter.note(f"storage answers again: attempt {job.attempts} starts over, not counted")
        self.metrics.attempts.labels("redone_after_outage").inc()
        return True

    async def _after_failure(
        self, message: JobMessage, job: Job, failure: JobFailure, reporter: JobReporter
    ) -> None:
        await self.store.discard(job.output_prefix)
        self.metrics.failures.labels(failure.code, str(failure.permanent).lower()).inc()
        log.warning(
            "attempt failed",
            extra={"job_id": str(job.id), "code": failure.code, "reason": failure.reason},
        )
        retry = not failure.permanent and job.attempts < self.settings.max_attempts
        async with job_row(self.database, job.id) as (session, row):
            assert row is not None
            if retry:
                jobstate.queue_for_retry(row, failure, reporter.log(failure.log_tail))
            else:
                await jobstate.mark_failed(session, row, failure, reporter.log(failure.log_tail))
        if retry:
            self.metrics.attempts.labels("retried").inc()
            await message.nak(delay=retry_delay(self.settings, job.attempts))
            return
        self.metrics.attempts.labels("failed").inc()
        if failure.permanent:
            await message.ack()
        else:
            await message.dead_letter(f"gave up after {job.attempts} attempts: {failure.reason}")

    async def _hand_back(
        self, message: JobMessage, job: Job, reporter: JobReporter, why: str
    ) -> None:
        """Shutdown (or an outage past the tolerance) before the job finished:
        queued again, and this attempt does not count."""
        with contextlib.suppress(Exception):
            async with job_row(self.database, job.id, processing=True) as (_, row):
                if row is not None:
                    reporter.note(f"handed back: {why}")
                    jobstate.hand_back(row, reporter.log())
        with contextlib.suppress(Exception):
            await message.nak()
        self.metrics.attempts.labels("handed_back").inc()


def serve_metrics(
    settings: TranscoderSettings, registry: CollectorRegistry, liveness: Liveness
) -> ProbeServer | None:
    """The worker's /metrics and /healthz (None when its port is 0)."""
    return serve_probes(
        settings.worker_metrics_port, settings.worker_metrics_host, registry, liveness
    )


async def run_worker(settings: TranscoderSettings) -> None:
    """``python -m studio_transcoder worker``: until SIGTERM or SIGINT."""
    worker = Worker(settings)
    worker.service.configure_process()
    # Before any job is taken: a worker that cannot serve its liveness port must
    # not have work in hand. `Worker.stop` shuts it down.
    worker._metrics_server = serve_metrics(settings, worker.registry, worker.liveness)
    await worker.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.request_stop)
    try:
        await worker.wait_stopped()
    finally:
        await worker.stop()
