"""uploads: what each upload is for, its file name and what it belongs to

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 17:40:00

Keys are made by the server from the upload's id (``uploads/<id>/<file name>``),
so a key belongs to exactly one upload. Nothing is deployed: rows from before
keep their keys (``filename`` NULL) and are not rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.add_column("uploads", sa.Column("asset_kind", sa.String(20), nullable=True), schema="media")
    op.execute(
        "UPDATE media.uploads SET asset_kind = CASE split_part(key, '/', 1) "
        "WHEN 'posters' THEN 'poster' WHEN 'banners' THEN 'banner' "
        "WHEN 'subtitles' THEN 'subtitle' ELSE 'source' END"
    )
    op.alter_column("uploads", "asset_kind", nullable=False, schema="media")
    op.add_column("uploads", sa.Column("filename", sa.String(200), nullable=True), schema="media")
    op.add_column("uploads", sa.Column("attached_to", sa.UUID(), nullable=True), schema="media")
    op.add_column("uploads", sa.Column("format", sa.String(20), nullable=True), schema="media")
    op.create_foreign_key(
        op.f("fk_uploads_attached_to_uploads"),
        "uploads",
        "uploads",
        ["attached_to"],
        ["id"],
        source_schema="media",
        referent_schema="media",
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        op.f("ck_uploads_asset_kind"),
        "uploads",
        "asset_kind IN ('source', 'poster', 'banner', 'subtitle')",
        schema="media",
    )
    op.drop_index("ix_uploads_key", table_name="uploads", schema="media")
    op.create_index(
        "ux_uploads_key",
        "uploads",
        ["key"],
        unique=True,
        schema="media",
        postgresql_where=sa.text("filename IS NOT NULL"),
    )
    op.create_index(
        "ix_uploads_legacy_key",
        "uploads",
        ["key"],
        schema="media",
        postgresql_where=sa.text("filename IS NULL"),
    )
    op.create_index("ix_uploads_attached_to", "uploads", ["attached_to"], schema="media")


def downgrade() -> None:
    op.drop_index("ix_uploads_attached_to", table_name="uploads", schema="media")
    op.drop_index("ix_uploads_legacy_key", table_name="uploads", schema="media")
    op.drop_index("ux_uploads_key", table_name="uploads", schema="media")
    op.create_index("ix_uploads_key", "uploads", ["key"], schema="media")
    op.drop_constraint(op.f("ck_uploads_asset_kind"), "uploads", schema="media", type_="check")
    op.drop_constraint(
        op.f("fk_uploads_attached_to_uploads"), "uploads", schema="media", type_="foreignkey"
    )
    for column in ("format", "attached_to", "filename", "asset_kind"):
        op.drop_column("uploads", column, schema="media")
