"""Wire models: camelCase JSON, bounded strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from studio_common.schemas import RequestModel

RoleName = Literal["viewer", "editor", "admin"]
WebhookStatus = Literal["processed", "duplicate", "ignored"]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"
    ),
]
Subject = Annotated[
    str, StringConstraints(min_length=1, max_length=191, pattern=r"^[A-Za-z0-9_.:@|-]+$")
]


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid"
    )


class UserOut(Schema):
    id: uuid.UUID
    clerk_id: str
    email: str | None
    role: RoleName
    created_at: datetime
    updated_at: datetime


class RoleIn(RequestModel):
    role: RoleName


class DevTokenIn(RequestModel):
    email: Email
    role: RoleName
    sub: Subject | None = None
    ttl_seconds: int | None = Field(default=None, ge=60)


class DevTokenOut(Schema):
    token: str
    expires_at: datetime
    sub: str


class WebhookResult(Schema):
    status: WebhookStatus
