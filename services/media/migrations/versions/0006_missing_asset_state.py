"""episode assets: the ``missing`` state, a ready episode whose HLS is gone from storage

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 20:40:00

studio_media.presence moves a ready asset to ``missing`` when its master
playlist is no longer in storage, and back when it returns.
"""

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"

OLD = "('pending', 'playable', 'ready', 'failed', 'deleted')"
NEW = "('pending', 'playable', 'ready', 'failed', 'deleted', 'missing')"


def upgrade() -> None:
    op.drop_constraint(
        op.f("ck_episode_assets_state"), "episode_assets", schema="media", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_episode_assets_state"), "episode_assets", f"state IN {NEW}", schema="media"
    )


def downgrade() -> None:
    # A missing asset was ready before; it becomes so again.
    op.execute("UPDATE media.episode_assets SET state = 'ready' WHERE state = 'missing'")
    op.drop_constraint(
        op.f("ck_episode_assets_state"), "episode_assets", schema="media", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_episode_assets_state"), "episode_assets", f"state IN {OLD}", schema="media"
    )
