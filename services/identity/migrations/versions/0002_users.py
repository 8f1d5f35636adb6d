"""users: one row per token subject (Clerk user id), with its role

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:16:30.197820
"""

import sqlalchemy as sa
from alembic import op

from studio_common.migrations import timestamp_column

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("clerk_id", sa.String(length=191), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("role", sa.String(length=16), server_default="viewer", nullable=False),
        sa.Column("role_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clerk_updated_at", sa.DateTime(timezone=True), nullable=True),
        timestamp_column("created_at"),
        timestamp_column("updated_at"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'editor', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("clerk_id", name=op.f("uq_users_clerk_id")),
        schema="identity",
    )
    op.create_index(
        "ix_users_created_at_id", "users", ["created_at", "id"], unique=False, schema="identity"
    )
    op.create_index(
        "ix_users_role_active",
        "users",
        ["role"],
        unique=False,
        schema="identity",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_users_role_active",
        table_name="users",
        schema="identity",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index("ix_users_created_at_id", table_name="users", schema="identity")
    op.drop_table("users", schema="identity")
