"""episodes.watched_from_sec: an episode counts as watched from the start of its ending

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 18:50:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.add_column(
        "episodes", sa.Column("watched_from_sec", sa.Float(), nullable=True), schema="playback"
    )
    op.add_column(
        "episodes",
        sa.Column("markers_at", sa.DateTime(timezone=True), nullable=True),
        schema="playback",
    )


def downgrade() -> None:
    op.drop_column("episodes", "markers_at", schema="playback")
    op.drop_column("episodes", "watched_from_sec", schema="playback")
