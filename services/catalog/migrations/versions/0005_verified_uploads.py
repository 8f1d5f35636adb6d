"""verified uploads: media's verified objects, projected from media.upload.verified

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 17:50:00

An episode may reference only a source media has verified. Nothing is deployed:
no episode is checked or rewritten retroactively.
"""

import sqlalchemy as sa
from alembic import op

from studio_common.migrations import timestamp_column

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.create_table(
        "verified_uploads",
        sa.Column("upload_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("attached_to", sa.UUID(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        timestamp_column("created_at"),
        sa.PrimaryKeyConstraint("upload_id", name=op.f("pk_verified_uploads")),
        sa.UniqueConstraint("key", name=op.f("uq_verified_uploads_key")),
        schema="catalog",
    )
    op.create_index(
        "ix_verified_uploads_attached_to",
        "verified_uploads",
        ["attached_to"],
        schema="catalog",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_verified_uploads_attached_to", table_name="verified_uploads", schema="catalog"
    )
    op.drop_table("verified_uploads", schema="catalog")
