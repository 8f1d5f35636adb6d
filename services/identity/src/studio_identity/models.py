"""The identity schema. Only this service reads or writes it.

A user is keyed by the token subject (the Clerk user id). Deleting a user in
Clerk keeps a tombstone (``deleted_at`` set, email scrubbed): a webhook that
arrives late for that user never brings it back, and the id stays unique.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from studio_common.db import service_metadata
from studio_common.outbox import messaging_tables

SCHEMA = "identity"
metadata = service_metadata(SCHEMA)
messaging = messaging_tables(metadata)

ROLES = ("viewer", "editor", "admin")


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    clerk_id: Mapped[str] = mapped_column(String(191), nullable=False, unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="viewer")
    # When the role last changed here; a Clerk webhook older than this does not
    # overwrite it.
    role_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Grows with every role change and the deletion: the role bucket (ADR 7)
    # never lets an older version replace a newer one. 0: never changed here.
    role_version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # Clerk's updated_at of the last webhook applied; older ones are ignored.
    clerk_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        Index("ix_users_created_at_id", "created_at", "id"),
        Index("ix_users_role_active", "role", postgresql_where=text("deleted_at IS NULL")),
    )
