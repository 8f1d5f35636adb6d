"""The playback schema. Only this service reads or writes it.

``titles`` and ``episodes`` are projections of the catalog, kept from its
events; ``tombstones`` remembers what was deleted, because each event type has
its own consumer and a ``created`` may be delivered after the ``deleted``.
Favorites and positions reference the projections with ``ON DELETE CASCADE``,
so deleting a title or an episode cannot leave anything dangling, and the
foreign-key check serialises a write with a concurrent deletion.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from studio_common.db import service_metadata
from studio_common.outbox import messaging_tables

SCHEMA = "playback"
metadata = service_metadata(SCHEMA)
messaging = messaging_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Title(Base):
    """A title that exists in the catalog (from ``catalog.title.*``)."""

    __tablename__ = "titles"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    slug: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    # occurredAt of the event that wrote the row: an older one never overwrites it.
    event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Episode(Base):
    """An episode of the catalog (``catalog.episode.uploaded``) and its duration
    (``transcoder.transcode.completed``, which may arrive first: then only
    ``duration_sec`` is set and the episode is not known yet)."""

    __tablename__ = "episodes"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    title_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    season_number: Mapped[int | None] = mapped_column(Integer)
    episode_number: Mapped[int | None] = mapped_column(Integer)
    duration_sec: Mapped[float | None] = mapped_column(Float)
    event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The start of the ending (``catalog.episode.markers_changed``): watched from
    # there; without one, from the watched fraction of the duration.
    watched_from_sec: Mapped[float | None] = mapped_column(Float)
    markers_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("duration_sec IS NULL OR duration_sec > 0", name="duration_positive"),
        Index("ix_episodes_title_order", "title_id", "season_number", "episode_number"),
    )


class Tombstone(Base):
    """A deleted title or episode; ids are never reused, so this is permanent."""

    __tablename__ = "tombstones"

    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    deleted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        PrimaryKeyConstraint("kind", "id"),
        CheckConstraint("kind IN ('title', 'episode')", name="kind"),
    )


class DeletedUser(Base):
    """A user erased by ``identity.user.deleted``: later writes are refused."""

    __tablename__ = "deleted_users"

    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class User(Base):
    """identity's user id (what ``/api/me`` returns) and the token subject it
    belongs to, from ``identity.user.created``; gone with ``identity.user.deleted``."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, nullable=False, unique=True)


class Favorite(Base):
    """One row per (user, title) ever favorited; ``active`` is the current state.

    A toggle is one ``INSERT ... ON CONFLICT DO UPDATE SET active = NOT active``:
    Postgres either inserts or locks and flips the row, so concurrent toggles
    serialise on the row and the final state is the parity of their number.
    """

    __tablename__ = "favorites"

    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    title_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("titles.id", ondelete="CASCADE"), nullable=False
    )
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    favorited_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        PrimaryKeyConstraint("user_id", "title_id"),
        Index(
            "ix_favorites_watchlist",
            "user_id",
            text("favorited_at DESC"),
            text("title_id DESC"),
            postgresql_where=text("active"),
        ),
        Index("ix_favorites_title_id", "title_id"),
    )


class Position(Base):
    """A user's resume position in an episode: the hottest table.

    Only the primary key and ``episode_id`` are indexed and neither changes on
    update, so heartbeats are HOT updates (fillfactor leaves room on the page).
    ``seq`` orders writes: an update applies only when its ``seq`` is greater.
    """

    __tablename__ = "positions"

    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    episode_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False
    )
    position_sec: Mapped[float] = mapped_column(Float, nullable=False)
    # Sticky: once past the threshold, the episode stays watched.
    watched: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        PrimaryKeyConstraint("user_id", "episode_id"),
        CheckConstraint("position_sec >= 0", name="position_non_negative"),
        Index("ix_positions_episode_id", "episode_id"),
        {"postgresql_with": {"fillfactor": 80}},
    )
