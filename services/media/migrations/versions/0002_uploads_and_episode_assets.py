"""uploads and episode assets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:16:32.142231
"""

import sqlalchemy as sa
from alembic import op

from studio_common.migrations import array_column, timestamp_column

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "episode_assets",
        sa.Column("episode_id", sa.UUID(), nullable=False),
        sa.Column("title_id", sa.UUID(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("hls_master_key", sa.String(length=1024), nullable=True),
        array_column("renditions", sa.String(length=40)),
        sa.Column("public", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        timestamp_column("created_at"),
        timestamp_column("updated_at"),
        sa.CheckConstraint(
            "state IN ('pending', 'playable', 'ready', 'failed', 'deleted')",
            name=op.f("ck_episode_assets_state"),
        ),
        sa.PrimaryKeyConstraint("episode_id", name=op.f("pk_episode_assets")),
        schema="media",
    )
    op.create_index(
        "ix_episode_assets_title_id", "episode_assets", ["title_id"], unique=False, schema="media"
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("s3_upload_id", sa.String(length=1024), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=True),
        sa.Column("part_count", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        timestamp_column("created_at"),
        timestamp_column("updated_at"),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind = 'single' OR (s3_upload_id IS NOT NULL AND part_size > 0 AND part_count > 0)",
            name=op.f("ck_uploads_multipart_fields"),
        ),
        sa.CheckConstraint("kind IN ('single', 'multipart')", name=op.f("ck_uploads_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'uploading', 'completed', 'verified', 'rejected', 'aborted', 'expired')",
            name=op.f("ck_uploads_status"),
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_uploads_size")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("s3_upload_id", name=op.f("uq_uploads_s3_upload_id")),
        schema="media",
    )
    op.create_index("ix_uploads_key", "uploads", ["key"], unique=False, schema="media")
    op.create_index(
        "ix_uploads_open_created_at",
        "uploads",
        ["created_at"],
        unique=False,
        schema="media",
        postgresql_where=sa.text("status IN ('pending', 'uploading')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_uploads_open_created_at",
        table_name="uploads",
        schema="media",
        postgresql_where=sa.text("status IN ('pending', 'uploading')"),
    )
    op.drop_index("ix_uploads_key", table_name="uploads", schema="media")
    op.drop_table("uploads", schema="media")
    op.drop_index("ix_episode_assets_title_id", table_name="episode_assets", schema="media")
    op.drop_table("episode_assets", schema="media")
