"""The jobs admin API. Every route requires the editor role or above."""

from __future__ import annotations

import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from studio_common.access import Access, access
from studio_common.auth import CurrentUser
from studio_common.db import SessionDep
from studio_common.errors import ValidationFailed
from studio_transcoder.schemas import JobDetail, JobOut, JobStatus, Page
from studio_transcoder.service import JobService

router = APIRouter(prefix="/api/admin/jobs", tags=["transcode jobs"])
EDITOR = access(Access.editor)


@router.get("", response_model=Page[JobOut], **EDITOR)
async def list_jobs(
    request: Request,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1)] = 20,
) -> Page[JobOut]:
    """Jobs, newest first, optionally only those with one status."""
    max_size: int = request.app.state.runtime.settings.max_page_size
    if page_size > max_size:
        raise ValidationFailed(
            f"pageSize may be at most {max_size}.",
            extra={
                "errors": [
                    {
                        "pointer": "query.pageSize",
                        "message": f"at most {max_size}",
                        "code": "less_than_equal",
                    }
                ]
            },
        )
    jobs, total = await JobService(session).list_page(status_filter, page, page_size)
    return Page[JobOut](
        items=[JobOut.model_validate(j) for j in jobs],
        page=page,
        page_size=page_size,
        total=total,
        total_pages=math.ceil(total / page_size) if total else 0,
    )


@router.get("/{job_id}", response_model=JobDetail, **EDITOR)
async def get_job(job_id: uuid.UUID, session: SessionDep) -> JobDetail:
    """One job with its event payload, result and the tail of its log."""
    return JobDetail.model_validate(await JobService(session).get(job_id))


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobDetail,
    responses={409: {"description": "The job has not failed."}},
    **EDITOR,
)
async def retry_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentUser) -> JobDetail:
    """Queues a failed job again (fresh attempts) through `transcoder.job.retry_requested`."""
    job = await JobService(session).retry(job_id, requested_by=principal.subject)
    return JobDetail.model_validate(job)
