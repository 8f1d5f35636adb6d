"""Wire models of the jobs API: camelCase JSON."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

JobStatus = Literal["queued", "processing", "ready", "failed"]


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid"
    )


class JobOut(Schema):
    id: uuid.UUID
    type: str
    status: JobStatus
    episode_id: uuid.UUID
    source_key: str
    attempts: int
    progress: float
    playable: bool
    error_code: str | None
    error_reason: str | None
    media_duration_sec: float | None
    encode_seconds: float | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PartOut(Schema):
    """One part of a chunked job; the chunk fields are set for video chunks only."""

    kind: str
    index: int
    state: str
    attempts: int
    start_sec: float | None
    end_sec: float | None
    first_segment: int | None
    segment_count: int | None
    encode_seconds: float | None
    error_code: str | None
    error_reason: str | None


class JobDetail(JobOut):
    payload: dict[str, Any]
    result: dict[str, Any] | None
    log_tail: str | None
    # The parts of the current attempt, in queue order; empty for a one-pass job.
    parts: list[PartOut] = []

    @classmethod
    def of(cls, job: Any, parts: Sequence[Any]) -> JobDetail:
        detail = cls.model_validate(job)
        detail.parts = [PartOut.model_validate(p) for p in parts]
        return detail
