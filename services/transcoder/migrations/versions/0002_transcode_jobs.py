"""transcode jobs: one row per episode source, with attempts, progress, log tail and result

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:29:37.836308
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from studio_common.migrations import timestamp_column

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("episode_id", sa.UUID(), nullable=False),
        sa.Column("source_key", sa.String(length=1024), nullable=False),
        sa.Column("source_event_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("progress", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("playable", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_reason", sa.Text(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("media_duration_sec", sa.Float(), nullable=True),
        sa.Column("encode_seconds", sa.Float(), nullable=True),
        timestamp_column("created_at"),
        timestamp_column("updated_at"),
        timestamp_column("queued_at"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'processing', 'ready', 'failed')", name=op.f("ck_jobs_status")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_jobs_attempts_non_negative")),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name=op.f("ck_jobs_progress_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("episode_id", "source_key", name="uq_jobs_episode_source"),
        schema="transcoder",
    )
    op.create_index(
        "ix_jobs_created_at_id", "jobs", ["created_at", "id"], unique=False, schema="transcoder"
    )
    op.create_index(
        "ix_jobs_status_created_at",
        "jobs",
        ["status", "created_at"],
        unique=False,
        schema="transcoder",
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_status_created_at", table_name="jobs", schema="transcoder")
    op.drop_index("ix_jobs_created_at_id", table_name="jobs", schema="transcoder")
    op.drop_table("jobs", schema="transcoder")
