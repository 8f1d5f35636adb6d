"""The catalog schema: titles, their seasons, and the seasons' episodes.

Deleting a title deletes its seasons and episodes (ON DELETE CASCADE); an
episode's ``title_id`` is kept consistent with its season by a composite
foreign key, so an episode can never point at a title its season is not in.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from studio_common.db import service_metadata
from studio_common.outbox import messaging_tables

SCHEMA = "catalog"
metadata = service_metadata(SCHEMA)
messaging = messaging_tables(metadata)

TITLE_TYPES = ("series", "movie", "ova", "ona", "special")
TRANSCODE_STATES = ("pending", "queued", "processing", "ready", "failed")


class Base(DeclarativeBase):
    metadata = metadata


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Title(Base):
    __tablename__ = "titles"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    type: Mapped[str] = mapped_column(String(20), nullable=False)
    year: Mapped[int | None] = mapped_column(Integer)
    synopsis: Mapped[str | None] = mapped_column(Text)
    poster_url: Mapped[str | None] = mapped_column(String(2048))
    banner_url: Mapped[str | None] = mapped_column(String(2048))
    genres: Mapped[list[str]] = mapped_column(
        ARRAY(String(60)), nullable=False, server_default=text("'{}'")
    )
    languages: Mapped[list[str]] = mapped_column(
        ARRAY(String(20)), nullable=False, server_default=text("'{}'")
    )
    platforms: Mapped[list[str]] = mapped_column(
        ARRAY(String(60)), nullable=False, server_default=text("'{}'")
    )
    rating_avg: Mapped[float | None] = mapped_column(Float)
    # Alternative names: [{"kind", "language", "name"}], validated by the API
    # (studio_catalog.names); read with the title in one row.
    names: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    # The search document of every name, built on write (names.search_document):
    # folded names and readings one a line, and the same keys as an array
    # (mirrored into title_keys, whose btree finds exact names and prefixes).
    search_names: Mapped[str] = mapped_column(
        Text, nullable=False, server_default="", deferred=True
    )
    name_keys: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'"), deferred=True
    )
    cjk_grams: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'"), deferred=True
    )
    # Weighted document for full-text search: the names count more than the
    # synopsis. Punctuation splits words, as it does a query's (migration 0009):
    # the parser alone reads "player-123" as "player" and the number "-123".
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector('simple', regexp_replace(coalesce(search_names, ''), "
            "'[^[:alnum:][:space:]]+', ' ', 'g')), 'A') || "
            "setweight(to_tsvector('simple', regexp_replace(coalesce(synopsis, ''), "
            "'[^[:alnum:][:space:]]+', ' ', 'g')), 'B')",
            persisted=True,
        ),
        # Only ever used in WHERE clauses; never worth loading.
        deferred=True,
    )
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    seasons: Mapped[list[Season]] = relationship(
        back_populates="title",
        order_by="Season.number",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        CheckConstraint(f"type IN {TITLE_TYPES!r}", name="type"),
        CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name="slug_format"),
        CheckConstraint("year IS NULL OR year BETWEEN 1900 AND 2100", name="year_range"),
        CheckConstraint("rating_avg IS NULL OR rating_avg BETWEEN 0 AND 10", name="rating_range"),
        Index("ix_titles_search", "search", postgresql_using="gin"),
        Index("ix_titles_cjk_grams", "cjk_grams", postgresql_using="gin"),
        Index("ix_titles_genres", "genres", postgresql_using="gin"),
        Index("ix_titles_type_name", "type", "name", "id"),
        Index("ix_titles_name_id", "name", "id"),
    )


class TitleKey(Base):
    """``titles.name_keys`` one row per key, in a btree (C collation): an exact
    name or a name's prefix is one index range, read only as far as a search's
    limit. Kept equal to ``name_keys`` by the trigger ``sync_title_keys``
    (migration 0008) on every insert and update; never written by the service."""

    __tablename__ = "title_keys"

    key: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    title_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("titles.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_title_keys_title_id", "title_id"),)


class SearchWord(Base):
    """Every word of the titles' search documents: what a misspelt query word is
    corrected to (trigram similarity on a few thousand words, not on every
    title). Added on each title write; a word no title has any more costs a
    search nothing."""

    __tablename__ = "search_words"

    # C collation: the primary key also answers prefixes (``word ^@ 'sta'``).
    word: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)

    __table_args__ = (
        Index(
            "ix_search_words_trgm",
            "word",
            postgresql_using="gin",
            postgresql_ops={"word": "gin_trgm_ops"},
        ),
    )


class Season(Base):
    __tablename__ = "seasons"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    title_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("titles.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = _now()

    title: Mapped[Title] = relationship(back_populates="seasons")
    episodes: Mapped[list[Episode]] = relationship(
        back_populates="season",
        order_by="Episode.number",
        cascade="all, delete-orphan",
        passive_deletes=True,
        primaryjoin="Season.id == foreign(Episode.season_id)",
    )

    __table_args__ = (
        UniqueConstraint("title_id", "number"),
        # Target of the episodes' composite key (season, title).
        UniqueConstraint("id", "title_id", name="uq_seasons_id_title_id"),
        CheckConstraint("number BETWEEN 0 AND 1000", name="number_range"),
    )


class Episode(Base):
    __tablename__ = "episodes"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    season_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    title_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    synopsis: Mapped[str | None] = mapped_column(Text)
    source_key: Mapped[str | None] = mapped_column(String(1024))
    duration_sec: Mapped[float | None] = mapped_column(Float)
    hls_master_url: Mapped[str | None] = mapped_column(String(2048))
    hls_master_key: Mapped[str | None] = mapped_column(String(1024))
    thumbnails: Mapped[list[str]] = mapped_column(
        ARRAY(String(2048)), nullable=False, server_default=text("'{}'")
    )
    subtitles: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    renditions: Mapped[list[str]] = mapped_column(
        ARRAY(String(40)), nullable=False, server_default=text("'{}'")
    )
    transcode_state: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default="pending"
    )
    transcode_progress: Mapped[float | None] = mapped_column(Float)
    # Whether media serves the episode now: set only from media's
    # playability events, so "playable" never runs ahead of the playback route.
    transcode_playable: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    # Public: streamed from plain CDN URLs where media runs in CDN mode.
    public: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    transcode_log: Mapped[str | None] = mapped_column(Text)
    transcode_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # occurredAt of the last transcode event applied: older events are ignored.
    transcode_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The same for media's playability events, ordered apart from the transcoder's.
    playable_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Openings and endings: [{kind, startSec, endSec, source: detected|editor}].
    markers: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    # Set once an editor wrote the markers: detection never replaces them again.
    markers_edited: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    # occurredAt of the last detection applied, ordered apart from the other events.
    markers_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    season: Mapped[Season] = relationship(
        back_populates="episodes", primaryjoin="foreign(Episode.season_id) == Season.id"
    )

    __table_args__ = (
        ForeignKeyConstraint(
            ["season_id", "title_id"],
            ["seasons.id", "seasons.title_id"],
            ondelete="CASCADE",
            name="fk_episodes_season_title",
        ),
        UniqueConstraint("season_id", "number"),
        CheckConstraint(f"transcode_state IN {TRANSCODE_STATES!r}", name="transcode_state"),
        CheckConstraint("number BETWEEN 0 AND 10000", name="number_range"),
        CheckConstraint(
            "transcode_progress IS NULL OR transcode_progress BETWEEN 0 AND 100",
            name="progress_range",
        ),
        Index("ix_episodes_title_id", "title_id"),
    )


class VerifiedUpload(Base):
    """Media's verified uploads, projected from ``media.upload.verified``.

    Only a verified source may be referenced by an episode; catalog learns them
    from media's events and never asks media synchronously."""

    __tablename__ = "verified_uploads"

    upload_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    format: Mapped[str] = mapped_column(String(20), nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    attached_to: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_verified_uploads_attached_to", "attached_to"),)
