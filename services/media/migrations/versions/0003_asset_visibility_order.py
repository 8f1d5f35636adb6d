"""episode assets: when catalog's visibility was last applied

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 17:05:00

Visibility events are ordered apart from transcode events, so each kind keeps
its own occurredAt of the last event applied.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.add_column(
        "episode_assets",
        sa.Column("public_event_at", sa.DateTime(timezone=True), nullable=True),
        schema="media",
    )


def downgrade() -> None:
    op.drop_column("episode_assets", "public_event_at", schema="media")
