"""episodes.playable_event_at: playable is media's word, ordered apart from transcode events

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.add_column(
        "episodes",
        sa.Column("playable_event_at", sa.DateTime(timezone=True), nullable=True),
        schema="catalog",
    )


def downgrade() -> None:
    op.drop_column("episodes", "playable_event_at", schema="catalog")
