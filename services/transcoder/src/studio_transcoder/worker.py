"""The worker process: ``catalog.episode.uploaded`` as a work queue, one job at a time.

Every replica pulls from the same durable consumers (one for uploads, one for
retries), so each message goes to one worker. A message stays unacknowledged
while its job runs and the worker keeps it alive with in-progress acks; a
worker that dies (even ``kill -9``) stops sending them and JetStream hands the
message to another replica after ``ack_wait``. That attempt starts over in a
fresh temp folder and overwrites the objects.

The job row is the idempotency record: one per episode and source, whatever
the deliveries. A Postgres advisory lock per episode, held on its own
connection for the whole attempt, keeps two workers off one episode (a dead
worker's connection closes and its lock goes with it).

Outcomes: ready → ack; a permanent failure (the file) → failed, ack; a
transient one → nak with exponential backoff until ``max_attempts``, then
failed and dead-lettered; SIGTERM → the running job gets a grace period, then
is handed back (nak) without counting as an attempt.

Storage going away is not the job's failure (:mod:`studio_transcoder.outage`):
the worker takes no new job until storage answers, a storage call waits for it
and runs again, and an attempt the outage broke (ffmpeg lost its source) is
redone in a new folder with the same attempt number, all within
``storage_outage_tolerance_seconds`` per outage; past that the job is handed
back, still uncounted. The message's in-progress acks go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from studio_common.db import Database
from studio_common.events import (
    Envelope,
    EpisodeUploadedV1,
    EventPayload,
    TranscodeCompletedV1,
    TranscodeFailedV1,
    TranscodePlayableV1,
    TranscodeProgressV1,
    TranscodeRetryRequestedV1,
    TranscodeStartedV1,
    dead_letter_subject,
    subject_for,
)
from studio_common.natsconn import NatsLink, connect_within, reconnect_delay
from studio_common.observability import MessagingMetrics, configure_logging
from studio_common.outbox import enqueue, ensure_stream
from studio_common.telemetry import (
    configure_sentry,
    configure_tracing,
    message_span,
    report_exception,
)
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import JobFailure, TransientFailure
from studio_transcoder.markers import record_and_detect
from studio_transcoder.metrics import WorkerMetrics
from studio_transcoder.models import Job, messaging
from studio_transcoder.naming import new_version, output_prefix
from studio_transcoder.outage import StorageGate
from studio_transcoder.pipeline import AttemptResult, TranscodeAttempt
from studio_transcoder.probes import Liveness, ProbeServer
from studio_transcoder.repository import JobRepository, clip_log
from studio_transcoder.storage import ObjectStore

log = logging.getLogger("studio.transcoder.worker")

WORKDIR_PREFIX = "studio-transcode-"
JOB_EVENTS: tuple[type[EventPayload], ...] = (EpisodeUploadedV1, TranscodeRetryRequestedV1)


def durable_name(event_type: str) -> str:
    return f"transcoder-worker-{event_type.replace('.', '-')}"


def advisory_key(episode_id: uuid.UUID) -> int:
    return int.from_bytes(episode_id.bytes[:8], "big", signed=True)


def retry_delay(settings: TranscoderSettings, attempts: int) -> float:
    return float(settings.retry_backoff_seconds * 2.0 ** max(0, attempts - 1))


class ProgressThrottle:
    """At most one progress report per interval, unless the step in percent is bigger."""

    def __init__(
        self, interval: float, step: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.step = step
        self.clock = clock
        self.last_percent = 0.0
        self.last_at: float | None = None

    def should_emit(self, percent: float) -> bool:
        if percent <= self.last_percent:
            return False
        now = self.clock()
        due = self.last_at is None or now - self.last_at >= self.interval
        if due or percent - self.last_percent >= self.step:
            self.last_percent, self.last_at = percent, now
            return True
        return False


class JobReporter:
    """What an attempt reports, written to the job row and the outbox together."""

    def __init__(
        self,
        database: Database,
        settings: TranscoderSettings,
        job_id: uuid.UUID,
        episode_id: uuid.UUID,
    ) -> None:
        self.database = database
        self.job_id = job_id
        self.episode_id = episode_id
        self.throttle = ProgressThrottle(
            settings.progress_interval_seconds, settings.progress_step_percent
        )
        self.is_playable = False
        self.notes: deque[str] = deque(maxlen=40)

    def restart(self) -> None:
        """The attempt starts over: progress from zero, not playable yet."""
        self.throttle.last_percent, self.throttle.last_at = 0.0, None
        self.is_playable = False

    async def progress(self, percent: float) -> None:
        percent = round(max(0.0, min(99.0, percent)), 2)
        if not self.throttle.should_emit(percent):
            return
        async with self.database.transaction() as session:
            job = await JobRepository(session).get(self.job_id, lock=True)
            if job is None or job.status != "processing":
                return
            job.progress = percent
            await enqueue(
                session,
                messaging,
                TranscodeProgressV1(
                    episode_id=self.episode_id,
                    job_id=self.job_id,
                    percent=percent,
                    playable=self.is_playable,
                ),
            )

    async def playable(self, master_key: str, renditions: list[str]) -> None:
        self.is_playable = True
        async with self.database.transaction() as session:
            job = await JobRepository(session).get(self.job_id, lock=True)
            if job is None or job.status != "processing":
                return
            job.playable = True
            await enqueue(
                session,
                messaging,
                TranscodePlayableV1(
                    episode_id=self.episode_id,
                    job_id=self.job_id,
                    hls_master_key=master_key,
                    renditions=renditions,
                ),
            )

    def note(self, line: str) -> None:
        log.info(line, extra={"job_id": str(self.job_id)})
        self.notes.append(line)

    def log(self, tail: str | None = None) -> str | None:
        parts = list(self.notes)
        if tail:
            parts += ["--- ffmpeg ---", tail]
        return clip_log("\n".join(parts))


class Worker:
    def __init__(
        self, settings: TranscoderSettings, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry)
        # The queue of the work: pending uploads and retries per durable consumer.
        self.queue_metrics = MessagingMetrics(self.registry, "transcoder-worker")
        self.database: Database | None = None
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.store: ObjectStore | None = None
        self.gate: StorageGate | None = None
        self._slots = asyncio.Semaphore(settings.worker_concurrency)
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._jobs: set[asyncio.Task[None]] = set()
        self._metrics_server: ProbeServer | None = None
        self._closed = False
        self.link = NatsLink(
            "transcoder-worker",
            registry=self.registry,
            reconnect_max_seconds=settings.nats_reconnect_max_seconds,
        )
        # What /healthz reads: when the event loop last ran, when each fetch loop last turned.
        self._heartbeat = time.monotonic()
        self._turned: dict[str, float] = {}

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if self._metrics_server is None:
            # Before anything else: liveness and metrics answer before any job is taken.
            self._metrics_server = serve_metrics(s, self.registry, self.liveness)
        remove_orphaned_workdirs(s.work_dir)
        self.database = Database.connect(
            s.database_url, pool_size=max(2, 2 * s.worker_concurrency + 1)
        )
        self.nc = await connect_within(
            nats.connect(s.nats_url, name="studio-transcoder-worker", **self.link.options()),
            s.nats_startup_wait_seconds,
        )
        self.link.mark_connected()
        self.js = self.nc.jetstream()
        self.store = ObjectStore(s)
        self.gate = self.store.gate_for()
        self.metrics.storage_up.set(1)
        self.gate.on_change = lambda up: self.metrics.storage_up.set(1 if up else 0)
        await ensure_stream(self.js, s.event_stream, s.event_subject_root)
        for event_cls in JOB_EVENTS:
            subscription = await self._subscribe(event_cls.event_type)
            self._loops.append(
                asyncio.create_task(
                    self._fetch_loop(subscription), name=f"fetch-{event_cls.event_type}"
                )
            )
        self._loops.append(asyncio.create_task(self._refresh_queue_metrics(), name="queue-metrics"))
        self._loops.append(asyncio.create_task(self._beat(), name="heartbeat"))
        log.info("transcoder worker started", extra={"concurrency": s.worker_concurrency})

    async def _subscribe(self, event_type: str) -> JetStreamContext.PullSubscription:
        assert self.js is not None
        s = self.settings
        durable = durable_name(event_type)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=s.worker_ack_wait_seconds,
            # One more than ours: a delivery after a crash on the last one still
            # reaches a worker, which dead-letters it.
            max_deliver=s.worker_max_deliver + 1,
            filter_subject=subject_for(s.event_subject_root, event_type),
        )
        # Creates the consumer or updates its settings (ack_wait, max_deliver).
        await self.js.add_consumer(s.event_stream, config=config)
        return await self.js.pull_subscribe_bind(durable, stream=s.event_stream)

    async def _refresh_queue_metrics(self) -> None:
        assert self.js is not None
        s = self.settings
        while not self._stopping.is_set():
            try:
                if not self.link.connected:
                    raise _Skip
                for event_cls in JOB_EVENTS:
                    durable = durable_name(event_cls.event_type)
                    info = await self.js.consumer_info(s.event_stream, durable)
                    self.queue_metrics.set_pending(
                        durable, info.num_pending or 0, info.num_ack_pending or 0
                    )
            except _Skip:
                pass
            except Exception:
                log.warning("could not read the queue's consumer info", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), s.metrics_refresh_seconds)

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self, grace: float | None = None) -> None:
        """Stops pulling, gives running jobs the grace period, then hands them back."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self._jobs:
            log.info("waiting for running jobs", extra={"jobs": len(self._jobs), "grace": grace})
            _, pending = await asyncio.wait(set(self._jobs), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self.gate is not None:
            await self.gate.close()
        self.link.mark_closing()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.database is not None:
            await self.database.dispose()
        log.info("transcoder worker stopped")

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    # --- pulling ------------------------------------------------------------

    def liveness(self) -> str | None:
        """Why the worker should be restarted, or None while it is alive.

        Called from the probe thread. A fetch loop that waits for a free slot
        or for NATS to return is alive; one that has not turned for
        ``worker_liveness_seconds`` while it could is not.
        """
        now = time.monotonic()
        bound = self.settings.worker_liveness_seconds
        if now - self._heartbeat > bound:
            return "the event loop has not run for %.0f s" % (now - self._heartbeat)
        if self.link.connected and not self._slots.locked():
            for name, turned in list(self._turned.items()):
                if now - turned > bound:
                    return f"{name} has not fetched for {now - turned:.0f} s"
        return None

    async def _beat(self) -> None:
        while not self._stopping.is_set():
            self._heartbeat = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)

    async def _fetch_loop(self, subscription: JetStreamContext.PullSubscription) -> None:
        timeout = self.settings.worker_fetch_timeout_seconds
        name = asyncio.current_task().get_name()  # type: ignore[union-attr]
        failures = 0
        while await self._free_slot():
            self._turned[name] = time.monotonic()
            if not self.link.connected:
                # Waits for the reconnect instead of failing a fetch per turn.
                self._slots.release()
                await self._until_connected(timeout)
                continue
            if not await self._storage_answers():
                self._slots.release()
                continue
            try:
                msgs = await subscription.fetch(1, timeout=timeout)
            except (NatsTimeout, TimeoutError):
                self._slots.release()
                failures = 0
                continue
            except Exception:
                self._slots.release()
                failures += 1
                if failures == 1:
                    log.warning("fetching from JetStream failed", exc_info=True)
                await asyncio.sleep(reconnect_delay(failures, base=0.5, cap=10.0))
                continue
            failures = 0
            task = asyncio.create_task(self._handle(msgs[0]))
            self._jobs.add(task)
            task.add_done_callback(self._job_done)

    async def _until_connected(self, within: float) -> None:
        stopping = asyncio.ensure_future(self._stopping.wait())
        connected = asyncio.ensure_future(self.link.wait_connected(within))
        await asyncio.wait({stopping, connected}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        connected.cancel()

    async def _free_slot(self) -> bool:
        """Waits for room for one more job; False once the worker is stopping."""
        acquire = asyncio.ensure_future(self._slots.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquire.done():
            acquire.cancel()
        try:
            await acquire
        except asyncio.CancelledError:
            return False
        if self._stopping.is_set():
            self._slots.release()
            return False
        return True

    async def _storage_answers(self) -> bool:
        """Intake waits while storage is away: a job taken now would only wait too."""
        if self.gate is None or self.gate.is_up:
            return True
        stopping = asyncio.ensure_future(self._stopping.wait())
        up = asyncio.ensure_future(self.gate.wait_up(self.settings.storage_probe_max_seconds))
        await asyncio.wait({stopping, up}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        up.cancel()
        return self.gate.is_up and not self._stopping.is_set()

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("job handler crashed", exc_info=task.exception())

    # --- one message --------------------------------------------------------

    async def _handle(self, msg: Msg) -> None:
        """One delivery, in a CONSUMER span continuing the trace in its headers, so
        the job's outbox events (started, progress, completed) carry it on."""
        event_type = (msg.headers or {}).get("Studio-Event-Type") or msg.subject
        with message_span(
            f"{event_type} process",
            msg.headers,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": durable_name(event_type),
            },
            service="transcoder-worker",
        ):
            await self._handle_in_span(msg)

    async def _handle_in_span(self, msg: Msg) -> None:
        try:
            envelope = Envelope.model_validate_json(msg.data)
            payload = envelope.payload()
            if not isinstance(payload, JOB_EVENTS):
                raise ValueError(f"{envelope.type} is not a job event")
        except Exception as exc:
            await self._dead_letter(msg, f"unreadable: {exc}")
            return
        episode_id = payload.episode_id  # type: ignore[attr-defined]
        async with self._episode_lock(episode_id) as locked:
            if not locked:
                # Another worker runs this episode; look again later, backing off.
                await msg.nak(delay=self._lock_wait(msg))
                return
            job = await self._claim(envelope, payload, msg)
            if job is None:
                await msg.ack()
                return
            await self._run(msg, job)

    def _lock_wait(self, msg: Msg) -> float:
        n = msg.metadata.num_delivered if msg.metadata else 1
        return float(min(300.0, self.settings.worker_ack_wait_seconds * 2 ** min(n - 1, 5)))

    @asynccontextmanager
    async def _episode_lock(self, episode_id: uuid.UUID) -> AsyncIterator[bool]:
        assert self.database is not None
        key = advisory_key(episode_id)
        async with self.database.engine.connect() as conn:
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

    async def _claim(self, envelope: Envelope, payload: EventPayload, msg: Msg) -> Job | None:
        """Decides, under the episode lock, whether this delivery runs an attempt."""
        assert self.database is not None
        num_delivered = msg.metadata.num_delivered if msg.metadata else 1
        async with self.database.transaction() as session:
            repo = JobRepository(session)
            if isinstance(payload, EpisodeUploadedV1):
                job = await repo.admit(
                    episode_id=payload.episode_id,
                    source_key=payload.source_key,
                    event_id=envelope.id,
                    payload=payload.model_dump(mode="json", by_alias=True),
                )
                if job.source_event_id != envelope.id:
                    if job.status in ("queued", "processing"):
                        return None  # the pending delivery of that event runs it
                    # A new upload of the same source: transcode it again.
                    self._requeue(job, envelope.id, payload.model_dump(mode="json", by_alias=True))
                elif job.status in ("ready", "failed"):
                    return None  # a redelivery of a finished job
            elif isinstance(payload, TranscodeRetryRequestedV1):
                found = await repo.get(payload.job_id, lock=True)
                if found is None or found.status != "queued":
                    return None
                job = found
            else:  # pragma: no cover - filtered in _handle
                return None
            if (
                job.attempts >= self.settings.max_attempts
                or num_delivered >= self.settings.worker_max_deliver
            ):
                # Earlier attempts ended without an outcome (the worker died each time).
                reason = (
                    f"Gave up after {job.attempts} attempts and {num_delivered} deliveries. "
                    f"Last error: {job.error_reason or 'the worker stopped during every attempt'}"
                )
                await self._mark_failed(session, job, TransientFailure("gave_up", reason))
                gave_up = True
            else:
                job.attempts += 1
                job.status = "processing"
                job.started_at = datetime.now(UTC)
                job.finished_at = None
                job.progress = 0.0
                job.playable = False
                job.error_code = job.error_reason = None
                await _start_in_new_folder(session, job)
                gave_up = False
        if gave_up:
            await self._dead_letter(msg, f"gave up: {job.error_reason}")
            return None
        return job

    @staticmethod
    def _requeue(job: Job, event_id: uuid.UUID, payload: dict[str, Any]) -> None:
        job.source_event_id = event_id
        job.payload = payload
        job.requeue()

    async def _run(self, msg: Msg, job: Job) -> None:
        assert self.database is not None
        assert self.store is not None
        event = EpisodeUploadedV1.model_validate(job.payload)
        reporter = JobReporter(self.database, self.settings, job.id, job.episode_id)
        reporter.note(f"attempt {job.attempts} of {self.settings.max_attempts} started")
        keepalive = asyncio.create_task(self._keep_alive(msg))
        self.metrics.running.inc()
        try:
            while True:
                outcome = await self._attempt(msg, job, event, reporter)
                if outcome != "outage":
                    return
                # The outage, not the job, broke the attempt: redo it, uncounted.
                try:
                    redone = await self._redo_after_outage(job, reporter)
                except asyncio.CancelledError:
                    await self._hand_back(
                        msg, job, reporter, "the worker shut down while storage was away"
                    )
                    raise
                if not redone:
                    await self._hand_back(
                        msg, job, reporter, "storage stayed unreachable past the tolerance"
                    )
                    return
        finally:
            keepalive.cancel()
            self.metrics.running.dec()

    async def _attempt(
        self, msg: Msg, job: Job, event: EpisodeUploadedV1, reporter: JobReporter
    ) -> str:
        """Runs the attempt once; "done", or "outage" when storage going away broke it."""
        assert self.store is not None
        assert self.gate is not None
        workdir = Path(
            tempfile.mkdtemp(
                prefix=f"{WORKDIR_PREFIX}{os.getpid()}-{job.id.hex[:8]}-",
                dir=self.settings.work_dir or None,
            )
        )
        outages = self.gate.outages
        try:
            assert job.output_prefix is not None
            attempt = TranscodeAttempt(
                self.settings, self.store, event, workdir, reporter, job.output_prefix
            )
            try:
                result = await attempt.run()
            except JobFailure as failure:
                if await self._is_outage(failure, outages):
                    reporter.note(f"storage unreachable during the attempt: {failure.reason}")
                    return "outage"
                await self._discard_output(job)
                await self._after_failure(msg, job, failure, reporter)
            except asyncio.CancelledError:
                await self._hand_back(
                    msg, job, reporter, "the worker shut down before the job finished"
                )
                raise
            except Exception as exc:
                log.exception("attempt crashed", extra={"job_id": str(job.id)})
                report_exception(exc)
                unexpected = TransientFailure(
                    "internal", f"Unexpected error in the worker: {exc!r}"
                )
                await self._discard_output(job)
                await self._after_failure(msg, job, unexpected, reporter)
            else:
                if result.source_streamed and self.gate.outages != outages:
                    # ffmpeg may take a source cut short by the outage for its end.
                    reporter.note("storage was unreachable while the source streamed")
                    return "outage"
                await self._complete(msg, job, result, reporter)
            return "done"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def _is_outage(self, failure: JobFailure, outages_before: int) -> bool:
        """Whether storage (not the job) is why the attempt failed: the failure says so,
        or it is a transient one (ffmpeg lost its source, a probe timed out) and
        storage went away during the attempt or does not answer now."""
        assert self.gate is not None
        if failure.infrastructure:
            return True
        if failure.permanent:
            return False
        return self.gate.outages != outages_before or not await self.gate.check()

    async def _redo_after_outage(self, job: Job, reporter: JobReporter) -> bool:
        """Waits (within the tolerance) for storage, then starts the same attempt
        again in a new folder; False when storage stayed away."""
        assert self.database is not None
        assert self.gate is not None
        remaining = self.gate.remaining(self.settings.storage_outage_tolerance_seconds)
        if not await self.gate.wait_up(remaining):
            return False
        await self._discard_output(job)
        async with self.database.transaction() as session:
            row = await JobRepository(session).get(job.id, lock=True)
            if row is None or row.status != "processing":
                return False
            row.progress = 0.0
            row.playable = False
            await _start_in_new_folder(session, row)
            job.output_prefix = row.output_prefix
        reporter.restart()
        reporter.note(f"storage answers again: attempt {job.attempts} starts over, not counted")
        self.metrics.attempts.labels("redone_after_outage").inc()
        return True

    async def _discard_output(self, job: Job) -> None:
        """Removes what a failed attempt wrote. Best effort: media also retires the
        folder once it hears of the failure or of the next attempt."""
        assert self.store is not None
        if not job.output_prefix:
            return
        try:
            await self.store.delete_prefix(job.output_prefix)
        except Exception:
            log.warning(
                "could not remove a failed attempt's output",
                extra={"job_id": str(job.id), "prefix": job.output_prefix},
            )

    async def _keep_alive(self, msg: Msg) -> None:
        interval = max(0.5, self.settings.worker_ack_wait_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
            except Exception:
                log.warning("in-progress ack failed", exc_info=True)

    # --- outcomes -----------------------------------------------------------

    async def _complete(
        self, msg: Msg, job: Job, result: AttemptResult, reporter: JobReporter
    ) -> None:
        assert self.database is not None
        async with self.database.transaction() as session:
            row = await JobRepository(session).get(job.id, lock=True)
            assert row is not None
            row.status = "ready"
            row.progress = 100.0
            row.playable = True
            row.finished_at = datetime.now(UTC)
            row.media_duration_sec = result.duration
            row.encode_seconds = round(result.encode_seconds, 3)
            row.log_tail = reporter.log(result.log_tail)
            row.result = {
                "hlsMasterKey": result.master_key,
                "hlsMasterUrl": result.master_url,
                "renditions": result.renditions,
                "audioLanguages": result.audio_languages,
                "thumbnails": result.thumbnails,
                "subtitles": [s.model_dump(mode="json", by_alias=True) for s in result.subtitles],
                "secondsToPlayable": result.seconds_to_playable,
                "sourceStreamed": result.source_streamed,
            }
            await enqueue(
                session,
                messaging,
                TranscodeCompletedV1(
                    episode_id=row.episode_id,
                    job_id=row.id,
                    hls_master_key=result.master_key,
                    hls_master_url=result.master_url,
                    duration_sec=result.duration,
                    renditions=result.renditions,
                    thumbnails=result.thumbnails,
                    subtitles=result.subtitles,
                ),
            )
            await record_and_detect(
                session, EpisodeUploadedV1.model_validate(row.payload), result.fingerprint
            )
        await msg.ack()
        self.metrics.attempts.labels("ready").inc()
        self.metrics.encode_ratio.observe(result.encode_seconds / max(result.duration, 1e-3))
        if result.seconds_to_playable is not None:
            self.metrics.time_to_playable.observe(result.seconds_to_playable)
        log.info(
            "job ready", extra={"job_id": str(job.id), "encode_seconds": result.encode_seconds}
        )

    async def _mark_failed(
        self, session: Any, job: Job, failure: JobFailure, log_tail: str | None = None
    ) -> None:
        job.status = "failed"
        job.finished_at = datetime.now(UTC)
        job.error_code = failure.code
        job.error_reason = failure.reason
        job.log_tail = clip_log(log_tail or failure.log_tail or job.log_tail)
        await enqueue(
            session,
            messaging,
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
        self.metrics.attempts.labels("failed").inc()

    async def _after_failure(
        self, msg: Msg, job: Job, failure: JobFailure, reporter: JobReporter
    ) -> None:
        assert self.database is not None
        self.metrics.failures.labels(failure.code, str(failure.permanent).lower()).inc()
        log.warning(
            "attempt failed",
            extra={"job_id": str(job.id), "code": failure.code, "reason": failure.reason},
        )
        retry = not failure.permanent and job.attempts < self.settings.max_attempts
        async with self.database.transaction() as session:
            row = await JobRepository(session).get(job.id, lock=True)
            assert row is not None
            if retry:
                row.status = "queued"
                row.error_code = failure.code
                row.error_reason = failure.reason
                row.log_tail = reporter.log(failure.log_tail)
            else:
                await self._mark_failed(session, row, failure, reporter.log(failure.log_tail))
        if retry:
            self.metrics.attempts.labels("retried").inc()
            await msg.nak(delay=retry_delay(self.settings, job.attempts))
        elif failure.permanent:
            await msg.ack()
        else:
            await self._dead_letter(msg, f"gave up after {job.attempts} attempts: {failure.reason}")

    async def _hand_back(self, msg: Msg, job: Job, reporter: JobReporter, why: str) -> None:
        """Shutdown (or an outage past the tolerance) before the job finished:
        queued again, and this attempt does not count."""
        assert self.database is not None
        with contextlib.suppress(Exception):
            async with self.database.transaction() as session:
                row = await JobRepository(session).get(job.id, lock=True)
                if row is not None and row.status == "processing":
                    row.status = "queued"
                    row.attempts = max(0, row.attempts - 1)
                    reporter.note(f"handed back: {why}")
                    row.log_tail = reporter.log()
        with contextlib.suppress(Exception):
            await msg.nak()
        self.metrics.attempts.labels("handed_back").inc()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        assert self.js is not None
        event_type = (msg.headers or {}).get("Studio-Event-Type") or msg.subject.removeprefix(
            f"{self.settings.event_subject_root}."
        )
        durable = durable_name(event_type)
        headers: dict[str, str] = {
            k: v
            for k, v in (msg.headers or {}).items()
            if k not in ("Nats-Msg-Id", "Nats-Expected-Stream")
        }
        if msg.metadata is not None:
            headers["Nats-Msg-Id"] = f"dlq:{durable}:{msg.metadata.sequence.stream}"
        headers["Studio-Dead-Letter-Reason"] = reason[:1000]
        headers["Studio-Original-Subject"] = msg.subject
        await self.js.publish(
            dead_letter_subject(self.settings.event_subject_root, durable, event_type),
            msg.data,
            headers=headers,
            stream=self.settings.event_stream,
        )
        await msg.ack()
        self.metrics.dead_letters.inc()
        log.error("message dead-lettered", extra={"reason": reason[:200]})


class _Skip(Exception):
    """Nothing to measure this round."""


def remove_orphaned_workdirs(work_dir: str | None) -> None:
    """Temp folders of workers that died (kill -9 cannot clean up after itself)."""
    root = Path(work_dir or tempfile.gettempdir())
    for path in root.glob(f"{WORKDIR_PREFIX}*"):
        try:
            pid = int(path.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _start_in_new_folder(session: Any, job: Job) -> None:
    """Every attempt writes a folder of its own, announced with its start: what an
    earlier one left (and what media serves) is never overwritten."""
    job.output_prefix = output_prefix(job.episode_id, new_version())
    await enqueue(
        session,
        messaging,
        TranscodeStartedV1(
            episode_id=job.episode_id,
            job_id=job.id,
            attempt=job.attempts,
            hls_prefix=job.output_prefix,
        ),
    )


def serve_metrics(
    settings: TranscoderSettings, registry: CollectorRegistry, liveness: Liveness
) -> ProbeServer | None:
    """The worker's /metrics and /healthz on its port, or on a free one when that
    is taken (a second worker on one machine); None when the port is 0."""
    if not settings.worker_metrics_port:
        return None
    host = settings.worker_metrics_host
    try:
        server = ProbeServer(settings.worker_metrics_port, registry, liveness, host=host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        server = ProbeServer(0, registry, liveness, host=host)
        log.warning(
            "worker metrics port in use; serving on a free one",
            extra={"wanted": settings.worker_metrics_port, "port": server.port},
        )
    log.info("worker metrics", extra={"url": f"http://{host}:{server.port}/metrics"})
    return server


async def run_worker(settings: TranscoderSettings) -> None:
    """``python -m studio_transcoder worker``: until SIGTERM or SIGINT."""
    configure_logging(settings.service_name + "-worker", settings.log_level, settings.log_json)
    configure_tracing(settings.service_name + "-worker")
    configure_sentry(
        settings.sentry_dsn,
        environment=settings.environment,
        service=settings.service_name + "-worker",
    )
    worker = Worker(settings)
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
