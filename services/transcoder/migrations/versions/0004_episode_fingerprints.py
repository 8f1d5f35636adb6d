"""episode_fingerprints: chromaprint fingerprints of each episode's first and last quarter, per season

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 18:40:00
"""

import sqlalchemy as sa
from alembic import op

from studio_common.migrations import json_list_column, timestamp_column

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.create_table(
        "episode_fingerprints",
        sa.Column("episode_id", sa.UUID(), nullable=False),
        sa.Column("season_id", sa.UUID(), nullable=False),
        sa.Column("title_id", sa.UUID(), nullable=False),
        sa.Column("season_number", sa.Integer(), nullable=False),
        sa.Column("duration_sec", sa.Float(), nullable=False),
        sa.Column("head", sa.LargeBinary(), nullable=False),
        sa.Column("tail", sa.LargeBinary(), nullable=False),
        sa.Column("tail_start_sec", sa.Float(), nullable=False),
        json_list_column("markers"),
        timestamp_column("updated_at"),
        sa.PrimaryKeyConstraint("episode_id", name=op.f("pk_episode_fingerprints")),
        schema="transcoder",
    )
    op.create_index(
        "ix_episode_fingerprints_season_id",
        "episode_fingerprints",
        ["season_id"],
        schema="transcoder",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_episode_fingerprints_season_id", table_name="episode_fingerprints", schema="transcoder"
    )
    op.drop_table("episode_fingerprints", schema="transcoder")
