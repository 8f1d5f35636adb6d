"""The jobs admin API. Every route requires the editor role or above."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from studio_common.access import Access, access
from studio_common.auth import CurrentUser
from studio_common.db import SessionDep
from studio_common.paging import Page, Paging
from studio_transcoder.schemas import JobDetail, JobOut, JobStatus
from studio_transcoder.service import JobService

router = APIRouter(prefix="/api/admin/jobs", tags=["transcode jobs"])
EDITOR = access(Access.editor)


@router.get("", response_model=Page[JobOut], **EDITOR)
async def list_jobs(
    session: SessionDep,
    paging: Paging,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
) -> Page[JobOut]:
    """Jobs, newest first, optionally only those with one status."""
    jobs, total = await JobService(session).list_page(status_filter, paging)
    return Page[JobOut].of([JobOut.model_validate(j) for j in jobs], paging, total)


@router.get("/{job_id}", response_model=JobDetail, **EDITOR)
async def get_job(job_id: uuid.UUID, session: SessionDep) -> JobDetail:
    """One job with its event payload, result, the tail of its log and, when it
    was split, the parts of its current attempt."""
    service = JobService(session)
    job = await service.get(job_id)
    return JobDetail.of(job, await service.parts(job))


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobDetail,
    responses={409: {"description": "The job has not failed."}},
    **EDITOR,
)
async def retry_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentUser) -> JobDetail:
    """Queues a failed job again (fresh attempts) through `transcoder.job.retry_requested`."""
    service = JobService(session)
    job = await service.retry(job_id, requested_by=principal.subject)
    return JobDetail.of(job, await service.parts(job))
