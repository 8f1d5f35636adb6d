"""users: identity's user id ↔ token subject, from identity.user.created

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 17:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("subject", name=op.f("uq_users_subject")),
        schema="playback",
    )


def downgrade() -> None:
    op.drop_table("users", schema="playback")
