"""initial catalog schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 13:05:50.027854
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from studio_common.migrations import (
    array_column,
    create_messaging_tables,
    drop_messaging_tables,
    json_list_column,
    timestamp_column,
)

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    # Trigram search on names; trusted extension, installed once per database in public.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    create_messaging_tables("catalog")
    op.create_table(
        "titles",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("synopsis", sa.Text(), nullable=True),
        sa.Column("poster_url", sa.String(length=2048), nullable=True),
        sa.Column("banner_url", sa.String(length=2048), nullable=True),
        array_column("genres", sa.String(length=60)),
        array_column("languages", sa.String(length=20)),
        array_column("platforms", sa.String(length=60)),
        sa.Column("rating_avg", sa.Float(), nullable=True),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('simple', coalesce(name, '')), 'A') || setweight(to_tsvector('simple', coalesce(synopsis, '')), 'B')",
                persisted=True,
            ),
            nullable=False,
        ),
        timestamp_column("created_at"),
        timestamp_column("updated_at"),
        sa.CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name=op.f("ck_titles_slug_format")),
        sa.CheckConstraint(
            "type IN ('series', 'movie', 'ova', 'ona', 'special')", name=op.f("ck_titles_type")
        ),
        sa.CheckConstraint(
            "rating_avg IS NULL OR rating_avg BETWEEN 0 AND 10", name=op.f("ck_titles_rating_range")
        ),
        sa.CheckConstraint(
            "year IS NULL OR year BETWEEN 1900 AND 2100", name=op.f("ck_titles_year_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_titles")),
        sa.UniqueConstraint("slug", name=op.f("uq_titles_slug")),
        schema="catalog",
    )
    op.create_index(
        "ix_titles_genres",
        "titles",
        ["genres"],
        unique=False,
        schema="catalog",
        postgresql_using="gin",
    )
    op.create_index("ix_titles_name_id", "titles", ["name", "id"], unique=False, schema="catalog")
    op.create_index(
        "ix_titles_name_trgm",
        "titles",
        ["name"],
        unique=False,
        schema="catalog",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_titles_search",
        "titles",
        ["search"],
        unique=False,
        schema="catalog",
        postgresql_using="gin",
    )
    op.create_index(
        "ix_titles_type_name", "titles", ["type", "name", "id"], unique=False, schema="catalog"
    )
    op.create_table(
        "seasons",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("title_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        timestamp_column("created_at"),
        sa.CheckConstraint("number BETWEEN 0 AND 1000", name=op.f("ck_seasons_number_range")),
        sa.ForeignKeyConstraint(
            ["title_id"],
            ["catalog.titles.id"],
            name=op.f("fk_seasons_title_id_titles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seasons")),
        sa.UniqueConstraint("id", "title_id", name="uq_seasons_id_title_id"),
        sa.UniqueConstraint("title_id", "number", name=op.f("uq_seasons_title_id_number")),
        schema="catalog",
    )
    op.create_table(
        "episodes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("season_id", sa.UUID(), nullable=False),
        sa.Column("title_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("synopsis", sa.Text(), nullable=True),
        sa.Column("source_key", sa.String(length=1024), nullable=True),
        sa.Column("duration_sec", sa.Float(), nullable=True),
        sa.Column("hls_master_url", sa.String(length=2048), nullable=True),
        sa.Column("hls_master_key", sa.String(length=1024), nullable=True),
        array_column("thumbnails", sa.String(length=2048)),
        json_list_column("subtitles"),
        array_column("renditions", sa.String(length=40)),
        sa.Column(
            "transcode_state", sa.String(length=20), server_default="pending", nullable=False
        ),
        sa.Column("transcode_progress", sa.Float(), nullable=True),
        sa.Column(
            "transcode_playable", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("transcode_log", sa.Text(), nullable=True),
        sa.Column("transcode_job_id", sa.UUID(), nullable=True),
        sa.Column("transcode_event_at", sa.DateTime(timezone=True), nullable=True),
        timestamp_column("created_at"),
        timestamp_column("updated_at"),
        sa.CheckConstraint(
            "transcode_state IN ('pending', 'queued', 'processing', 'ready', 'failed')",
            name=op.f("ck_episodes_transcode_state"),
        ),
        sa.CheckConstraint("number BETWEEN 0 AND 10000", name=op.f("ck_episodes_number_range")),
        sa.CheckConstraint(
            "transcode_progress IS NULL OR transcode_progress BETWEEN 0 AND 100",
            name=op.f("ck_episodes_progress_range"),
        ),
        sa.ForeignKeyConstraint(
            ["season_id", "title_id"],
            ["catalog.seasons.id", "catalog.seasons.title_id"],
            name="fk_episodes_season_title",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
        sa.UniqueConstraint("season_id", "number", name=op.f("uq_episodes_season_id_number")),
        schema="catalog",
    )
    op.create_index(
        "ix_episodes_title_id", "episodes", ["title_id"], unique=False, schema="catalog"
    )


def downgrade() -> None:
    op.drop_index("ix_episodes_title_id", table_name="episodes", schema="catalog")
    op.drop_table("episodes", schema="catalog")
    op.drop_table("seasons", schema="catalog")
    op.drop_index("ix_titles_type_name", table_name="titles", schema="catalog")
    op.drop_index("ix_titles_search", table_name="titles", schema="catalog", postgresql_using="gin")
    op.drop_index(
        "ix_titles_name_trgm",
        table_name="titles",
        schema="catalog",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.drop_index("ix_titles_name_id", table_name="titles", schema="catalog")
    op.drop_index("ix_titles_genres", table_name="titles", schema="catalog", postgresql_using="gin")
    op.drop_table("titles", schema="catalog")
    drop_messaging_tables("catalog")
