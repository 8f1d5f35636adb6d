"""Job use cases of the API process; each runs in the request's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.errors import Conflict, NotFound
from studio_common.events import TranscodeRetryRequestedV1
from studio_common.outbox import enqueue
from studio_common.paging import PageParams
from studio_transcoder.models import Job, TranscodePart, messaging
from studio_transcoder.partstate import CANCELLED_CODES, parts_of, queue_order
from studio_transcoder.repository import JobRepository


class JobService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.jobs = JobRepository(session)

    async def get(self, job_id: uuid.UUID) -> Job:
        job = await self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"No job with id {job_id}.")
        return job

    async def parts(self, job: Job) -> list[TranscodePart]:
        """The parts of the job's current attempt, in queue order ([] for a one-pass job)."""
        if not job.output_prefix:
            return []
        return queue_order(await parts_of(self.session, job))

    async def list_page(self, status: str | None, paging: PageParams) -> tuple[list[Job], int]:
        return await self.jobs.list_page(status=status, offset=paging.offset, limit=paging.size)

    async def retry(self, job_id: uuid.UUID, requested_by: str) -> Job:
        """Queues a failed job again with fresh attempts; the worker picks it up from the event."""
        job = await self.jobs.get(job_id, lock=True)
        if job is None:
            raise NotFound(f"No job with id {job_id}.")
        if job.status != "failed":
            raise Conflict(f"Only a failed job can be retried; this one is {job.status}.")
        if job.error_code in CANCELLED_CODES:
            # Running it again would replace the newer upload's output, or
            # transcode an episode that is gone.
            raise Conflict(f"This job was stopped ({job.error_code}); it cannot be retried.")
        job.requeue()
        await enqueue(
            self.session,
            messaging,
            TranscodeRetryRequestedV1(
                job_id=job.id, episode_id=job.episode_id, requested_by=requested_by
            ),
        )
        await self.session.flush()
        await self.session.refresh(job)
        return job
