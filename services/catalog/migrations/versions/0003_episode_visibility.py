"""episode visibility: public episodes may be streamed from plain CDN URLs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.add_column(
        "episodes",
        sa.Column("public", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="catalog",
    )


def downgrade() -> None:
    op.drop_column("episodes", "public", schema="catalog")
