"""Wire models of the jobs API: camelCase JSON."""

from __future__ import annotations

import uuid
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


class JobDetail(JobOut):
    payload: dict[str, Any]
    result: dict[str, Any] | None
    log_tail: str | None
