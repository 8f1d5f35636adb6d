"""The media schema. Only this service reads or writes it.

``uploads`` tracks every upload this service signed, so abandoned multipart
uploads can be aborted and a verified object can be told from an unchecked
one. ``episode_assets`` is media's own projection of where each episode's HLS
lives, built from catalog and transcoder events; media never reads catalog.
``hls_folders`` registers every folder of HLS objects an episode ever had
(one per transcode attempt, plus public copies): only registered folders are
served, and only registered folders are ever deleted.
"""

from __future__ import annotations

import posixpath
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from studio_common.db import service_metadata
from studio_common.outbox import messaging_tables

SCHEMA = "media"
metadata = service_metadata(SCHEMA)
messaging = messaging_tables(metadata)

UPLOAD_KINDS = ("single", "multipart")
# What the upload is for (studio_media.policy.UploadKind); it decides the key prefix.
ASSET_KINDS = ("source", "poster", "banner", "subtitle")
# pending: presigned PUT handed out; uploading: multipart open; completed:
# the object exists but is unchecked; verified / rejected: checked.
UPLOAD_STATES = ("pending", "uploading", "completed", "verified", "rejected", "aborted", "expired")
# missing: was ready, but its master is gone from storage (studio_media.service.presence).
ASSET_STATES = ("pending", "playable", "ready", "failed", "deleted", "missing")


class Base(DeclarativeBase):
    metadata = metadata


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(512), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    asset_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # The client's file name, the last segment of the key; NULL on rows from
    # before keys were made from upload ids.
    filename: Mapped[str | None] = mapped_column(String(200))
    # The source upload a subtitle (or art) belongs to, owned by the same editor.
    attached_to: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("media.uploads.id", ondelete="SET NULL")
    )
    format: Mapped[str | None] = mapped_column(String(20))  # what verification found
    s3_upload_id: Mapped[str | None] = mapped_column(String(1024), unique=True)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    part_size: Mapped[int | None] = mapped_column(BigInteger)
    part_count: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"kind IN {UPLOAD_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {UPLOAD_STATES!r}", name="status"),
        CheckConstraint(f"asset_kind IN {ASSET_KINDS!r}", name="asset_kind"),
        CheckConstraint("size >= 0", name="size"),
        CheckConstraint(
            "kind = 'single' OR (s3_upload_id IS NOT NULL AND part_size > 0 AND part_count > 0)",
            name="multipart_fields",
        ),
        # One upload per key: keys are made from the upload's own id.
        Index(
            "ux_uploads_key",
            "key",
            unique=True,
            postgresql_where=text("filename IS NOT NULL"),
        ),
        Index("ix_uploads_legacy_key", "key", postgresql_where=text("filename IS NULL")),
        Index("ix_uploads_attached_to", "attached_to"),
        # The cleanup sweep: open uploads by age.
        Index(
            "ix_uploads_open_created_at",
            "created_at",
            postgresql_where=text("status IN ('pending', 'uploading')"),
        ),
    )


class EpisodeAsset(Base):
    __tablename__ = "episode_assets"

    episode_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    title_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    hls_master_key: Mapped[str | None] = mapped_column(String(1024))
    renditions: Mapped[list[str]] = mapped_column(
        ARRAY(String(40)), nullable=False, server_default=text("'{}'")
    )
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # The master of the unsigned copy under public/hls/ (a ready public episode only).
    public_master_key: Mapped[str | None] = mapped_column(String(1024))
    # occurredAt of the last event applied: older events are ignored (ADR 1).
    event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The same for catalog's visibility events, which are ordered apart: a
    # visibility change must not make a late transcode event look stale.
    public_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint(f"state IN {ASSET_STATES!r}", name="state"),
        Index("ix_episode_assets_title_id", "title_id"),
    )

    @property
    def hls_prefix(self) -> str | None:
        """The folder every file of this episode's HLS lives in, with a trailing '/'."""
        if not self.hls_master_key:
            return None
        return posixpath.dirname(self.hls_master_key) + "/"

    @property
    def public_prefix(self) -> str | None:
        if not self.public_master_key:
            return None
        return posixpath.dirname(self.public_master_key) + "/"

    @property
    def playable(self) -> bool:
        return self.state in ("playable", "ready") and self.hls_master_key is not None

    def serves(self, prefix: str) -> bool:
        return prefix in (self.hls_prefix, self.public_prefix)


class HlsFolder(Base):
    """A folder of HLS objects: ``hls/{episodeId}/{version}/`` as the transcoder
    wrote it, or its unsigned copy ``public/hls/{episodeId}/{version}/``."""

    __tablename__ = "hls_folders"

    prefix: Mapped[str] = mapped_column(String(300), primary_key=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # When set, the sweep deletes the folder from then on (unless it is served again).
    retire_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        Index("ix_hls_folders_episode_id", "episode_id"),
        Index(
            "ix_hls_folders_retire_after",
            "retire_after",
            postgresql_where=text("deleted_at IS NULL AND retire_after IS NOT NULL"),
        ),
    )
