"""All SQL of the transcoder's jobs; nothing here commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from studio_transcoder.models import JOB_STATUSES, JOB_TYPE_TRANSCODE, Job

LOG_TAIL_CHARS = 8_000


def clip_log(text: str | None) -> str | None:
    if not text:
        return None
    return text[-LOG_TAIL_CHARS:]


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        stmt = select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).first()

    async def admit(
        self,
        *,
        episode_id: uuid.UUID,
        source_key: str,
        event_id: uuid.UUID,
        payload: dict[str, Any],
    ) -> Job:
        """The job for this episode and source, created when it is the first event for it."""
        await self.session.execute(
            insert(Job)
            .values(
                id=uuid.uuid4(),
                type=JOB_TYPE_TRANSCODE,
                payload=payload,
                episode_id=episode_id,
                source_key=source_key,
                source_event_id=event_id,
                status="queued",
            )
            .on_conflict_do_nothing(constraint="uq_jobs_episode_source")
        )
        stmt = (
            select(Job)
            .where(Job.episode_id == episode_id, Job.source_key == source_key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        job = (await self.session.scalars(stmt)).one()
        return job

    async def list_page(
        self, *, status: str | None, offset: int, limit: int
    ) -> tuple[list[Job], int]:
        where = [Job.status == status] if status else []
        total = int(
            await self.session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
        )
        rows = await self.session.scalars(
            select(Job)
            .where(*where)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return list(rows.all()), total

    async def count_by_status(self) -> dict[str, int]:
        rows = (
            await self.session.execute(select(Job.status, func.count()).group_by(Job.status))
        ).all()
        counts = dict.fromkeys(JOB_STATUSES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts
