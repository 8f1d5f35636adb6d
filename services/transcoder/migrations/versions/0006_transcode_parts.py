"""transcode_parts: the chunks and side jobs of a chunked job, each its own queue message;
jobs.chunk_plan: the ladder every part of the attempt encodes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("chunk_plan", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="transcoder",
    )
    op.create_table(
        "transcode_parts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("output_prefix", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start_sec", sa.Float(), nullable=True),
        sa.Column("end_sec", sa.Float(), nullable=True),
        sa.Column("first_segment", sa.Integer(), nullable=True),
        sa.Column("segment_count", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_reason", sa.Text(), nullable=True),
        sa.Column("encode_seconds", sa.Float(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('video', 'audio', 'images', 'subtitles')",
            name=op.f("ck_transcode_parts_kind"),
        ),
        sa.CheckConstraint(
            "state IN ('queued', 'processing', 'done', 'cancelled')",
            name=op.f("ck_transcode_parts_state"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_transcode_parts_attempts_non_negative")),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["transcoder.jobs.id"],
            name=op.f("fk_transcode_parts_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcode_parts")),
        sa.UniqueConstraint(
            "job_id", "output_prefix", "kind", "index", name="uq_transcode_parts_job_part"
        ),
        schema="transcoder",
    )


def downgrade() -> None:
    op.drop_table("transcode_parts", schema="transcoder")
    op.drop_column("jobs", "chunk_plan", schema="transcoder")
