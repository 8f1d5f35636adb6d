"""episodes.markers: openings and endings, detected or set by an editor

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 18:45:00
"""

import sqlalchemy as sa
from alembic import op

from studio_common.migrations import json_list_column

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    op.add_column(
        "episodes",
        json_list_column("markers"),
        schema="catalog",
    )
    op.add_column(
        "episodes",
        sa.Column("markers_edited", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="catalog",
    )
    op.add_column(
        "episodes",
        sa.Column("markers_event_at", sa.DateTime(timezone=True), nullable=True),
        schema="catalog",
    )


def downgrade() -> None:
    for column in ("markers_event_at", "markers_edited", "markers"):
        op.drop_column("episodes", column, schema="catalog")
