"""favorites, positions and catalog projections

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:16:50.868288
"""

import sqlalchemy as sa
from alembic import op

from studio_common.migrations import timestamp_column

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    # Projections of the catalog, kept from its events, and what was deleted.
    op.create_table(
        "deleted_users",
        sa.Column("user_id", sa.Text(), nullable=False),
        timestamp_column("deleted_at"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_deleted_users")),
        schema="playback",
    )
    op.create_table(
        "episodes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("title_id", sa.UUID(), nullable=True),
        sa.Column("season_number", sa.Integer(), nullable=True),
        sa.Column("episode_number", sa.Integer(), nullable=True),
        sa.Column("duration_sec", sa.Float(), nullable=True),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "duration_sec IS NULL OR duration_sec > 0", name=op.f("ck_episodes_duration_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
        schema="playback",
    )
    op.create_index(
        "ix_episodes_title_order",
        "episodes",
        ["title_id", "season_number", "episode_number"],
        unique=False,
        schema="playback",
    )
    op.create_table(
        "titles",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_titles")),
        schema="playback",
    )
    op.create_table(
        "tombstones",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        timestamp_column("deleted_at"),
        sa.CheckConstraint("kind IN ('title', 'episode')", name=op.f("ck_tombstones_kind")),
        sa.PrimaryKeyConstraint("kind", "id", name=op.f("pk_tombstones")),
        schema="playback",
    )
    # Unique per (user, title); `active` is the toggled state.
    op.create_table(
        "favorites",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title_id", sa.UUID(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        timestamp_column("favorited_at"),
        timestamp_column("updated_at"),
        sa.ForeignKeyConstraint(
            ["title_id"],
            ["playback.titles.id"],
            name=op.f("fk_favorites_title_id_titles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "title_id", name=op.f("pk_favorites")),
        schema="playback",
    )
    op.create_index(
        "ix_favorites_title_id", "favorites", ["title_id"], unique=False, schema="playback"
    )
    op.create_index(
        "ix_favorites_watchlist",
        "favorites",
        ["user_id", sa.literal_column("favorited_at DESC"), sa.literal_column("title_id DESC")],
        unique=False,
        schema="playback",
        postgresql_where=sa.text("active"),
    )
    # The hot table: only keys that never change are indexed, so updates are
    # HOT, and fillfactor leaves room on each page for the new row versions.
    op.create_table(
        "positions",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("episode_id", sa.UUID(), nullable=False),
        sa.Column("position_sec", sa.Float(), nullable=False),
        sa.Column("watched", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        timestamp_column("updated_at"),
        sa.CheckConstraint("position_sec >= 0", name=op.f("ck_positions_position_non_negative")),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["playback.episodes.id"],
            name=op.f("fk_positions_episode_id_episodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "episode_id", name=op.f("pk_positions")),
        schema="playback",
        postgresql_with={"fillfactor": 80},
    )
    op.create_index(
        "ix_positions_episode_id", "positions", ["episode_id"], unique=False, schema="playback"
    )


def downgrade() -> None:
    op.drop_index("ix_positions_episode_id", table_name="positions", schema="playback")
    op.drop_table("positions", schema="playback")
    op.drop_index(
        "ix_favorites_watchlist",
        table_name="favorites",
        schema="playback",
        postgresql_where=sa.text("active"),
    )
    op.drop_index("ix_favorites_title_id", table_name="favorites", schema="playback")
    op.drop_table("favorites", schema="playback")
    op.drop_table("tombstones", schema="playback")
    op.drop_table("titles", schema="playback")
    op.drop_index("ix_episodes_title_order", table_name="episodes", schema="playback")
    op.drop_table("episodes", schema="playback")
    op.drop_table("deleted_users", schema="playback")
