"""jobs.output_prefix: the versioned folder each attempt writes (hls/{episodeId}/{version}/)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("output_prefix", sa.String(length=200), nullable=True),
        schema="transcoder",
    )


def downgrade() -> None:
    op.drop_column("jobs", "output_prefix", schema="transcoder")
