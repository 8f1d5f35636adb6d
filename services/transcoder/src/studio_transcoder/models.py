"""The transcoder schema. Only this service reads or writes it.

A job is identified by the episode and its source key: however often the
``catalog.episode.uploaded`` event is delivered, there is one row, and a later
event for the same source (a re-upload) reopens that row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from studio_common.db import service_metadata
from studio_common.outbox import MessagingTables, messaging_tables, outbox_table

SCHEMA = "transcoder"
metadata = service_metadata(SCHEMA)
# The API process's outbox (retry requests, markers after a deletion) ...
messaging = messaging_tables(metadata)
# ... and the worker's own, written in the transaction of each job-state change
# and published by the worker's relay.
worker_messaging = MessagingTables(
    outbox=outbox_table(metadata, "worker_outbox"), inbox=messaging.inbox
)

JOB_STATUSES = ("queued", "processing", "ready", "failed")
# head: chunk 0 and the audio in one part (the episode is playable from it).
# "audio" (the audio as a part of its own) is no longer queued; the column
# and the event still accept it.
PART_KINDS = ("head", "video", "audio", "images", "subtitles")
QUEUED_KINDS = ("head", "video", "images", "subtitles")
# Kinds whose result holds chunk 0's video segments, and the audio segments.
CHUNK_KINDS = ("head", "video")
AUDIO_KINDS = ("head", "audio")
# done and cancelled are final; a failed attempt goes back to queued (its
# message is redelivered) until the part's attempts run out, which fails the job.
PART_STATES = ("queued", "processing", "done", "cancelled")
JOB_TYPE_TRANSCODE = "transcode"


class Base(DeclarativeBase):
    metadata = metadata


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(40), nullable=False, default=JOB_TYPE_TRANSCODE)
    # The data of the event that (re)queued the job.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    episode_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    source_key: Mapped[str] = mapped_column(String(1024), nullable=False)
    source_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="queued")
    # Attempts started since the job was (re)queued; a crash counts as one.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    progress: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))
    playable: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_reason: Mapped[str | None] = mapped_column(Text)
    log_tail: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The folder of the current (or last) attempt: hls/{episodeId}/{version}/.
    output_prefix: Mapped[str | None] = mapped_column(String(200))
    media_duration_sec: Mapped[float | None] = mapped_column(Float)
    encode_seconds: Mapped[float | None] = mapped_column(Float)
    # When the current attempt is split into parts: the ladder they all encode
    # and the source's duration, decided once when the job was split.
    chunk_plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    queued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def requeue(self) -> None:
        """Back to `queued` with fresh attempts and no outcome (retry, or a new upload)."""
        self.status = "queued"
        self.attempts = 0
        self.progress = 0.0
        self.playable = False
        self.error_code = self.error_reason = None
        self.result = None
        self.started_at = self.finished_at = None
        self.queued_at = datetime.now(UTC)

    __table_args__ = (
        UniqueConstraint("episode_id", "source_key", name="uq_jobs_episode_source"),
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress_range"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_created_at_id", "created_at", "id"),
    )


class EpisodeFingerprint(Base):
    """An episode's audio fingerprints (raw chromaprint items, little-endian
    32-bit) and the markers last detected from them, per season."""

    __tablename__ = "episode_fingerprints"

    episode_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    season_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    title_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    season_number: Mapped[int] = mapped_column(Integer, nullable=False)
    duration_sec: Mapped[float] = mapped_column(Float, nullable=False)
    head: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    tail: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    tail_start_sec: Mapped[float] = mapped_column(Float, nullable=False)
    markers: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (Index("ix_episode_fingerprints_season_id", "season_id"),)


class TranscodePart(Base):
    """One piece of a chunked job: a video chunk (whole segments of every video
    rendition) or a side job (audio, images, subtitles) encoded once for the
    episode. Each is one queue message that any worker takes; the row is its
    idempotency record, keyed by the attempt's folder so that a part of an
    earlier attempt (or a superseded upload) is recognised and dropped."""

    __tablename__ = "transcode_parts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    )
    # The job attempt's folder this part writes into.
    output_prefix: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # The chunk's index for video, 0 for side jobs.
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    # The chunk on the source timeline and on the segment grid (video only).
    start_sec: Mapped[float | None] = mapped_column(Float)
    end_sec: Mapped[float | None] = mapped_column(Float)
    first_segment: Mapped[int | None] = mapped_column(Integer)
    segment_count: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), nullable=False, server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # What the part put in storage (chunked.PartResult.to_json()), once done.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_reason: Mapped[str | None] = mapped_column(Text)
    encode_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint(
            "job_id", "output_prefix", "kind", "index", name="uq_transcode_parts_job_part"
        ),
        CheckConstraint(f"kind IN {PART_KINDS!r}", name="kind"),
        CheckConstraint(f"state IN {PART_STATES!r}", name="state"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    )
