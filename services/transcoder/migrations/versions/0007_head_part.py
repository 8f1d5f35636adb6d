"""transcode_parts.kind: head, chunk 0 and the audio in one part

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('head', 'video', 'audio', 'images', 'subtitles')"
OLD_KINDS = "kind IN ('video', 'audio', 'images', 'subtitles')"


def upgrade() -> None:
    op.drop_constraint(
        op.f("ck_transcode_parts_kind"), "transcode_parts", schema="transcoder", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_transcode_parts_kind"), "transcode_parts", KINDS, schema="transcoder"
    )


def downgrade() -> None:
    op.execute("DELETE FROM transcoder.transcode_parts WHERE kind = 'head'")
    op.drop_constraint(
        op.f("ck_transcode_parts_kind"), "transcode_parts", schema="transcoder", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_transcode_parts_kind"), "transcode_parts", OLD_KINDS, schema="transcoder"
    )
