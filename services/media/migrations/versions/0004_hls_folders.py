"""hls folders: every versioned HLS folder an episode had, and its public copy

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 18:10:00

Nothing is deployed yet, so folders of the old slug-based layout are not
carried over (ADR 6).
"""

import sqlalchemy as sa
from alembic import op

from studio_common.migrations import timestamp_column

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.add_column(
        "episode_assets",
        sa.Column("public_master_key", sa.String(length=1024), nullable=True),
        schema="media",
    )
    op.create_table(
        "hls_folders",
        sa.Column("prefix", sa.String(length=300), nullable=False),
        sa.Column("episode_id", sa.UUID(), nullable=False),
        sa.Column("public", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("retire_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        timestamp_column("created_at"),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_hls_folders")),
        schema="media",
    )
    op.create_index(
        "ix_hls_folders_episode_id", "hls_folders", ["episode_id"], unique=False, schema="media"
    )
    op.create_index(
        "ix_hls_folders_retire_after",
        "hls_folders",
        ["retire_after"],
        unique=False,
        schema="media",
        postgresql_where=sa.text("deleted_at IS NULL AND retire_after IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_hls_folders_retire_after", table_name="hls_folders", schema="media")
    op.drop_index("ix_hls_folders_episode_id", table_name="hls_folders", schema="media")
    op.drop_table("hls_folders", schema="media")
    op.drop_column("episode_assets", "public_master_key", schema="media")
