"""playback schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 13:10:06.745817
"""

from studio_common.migrations import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    create_messaging_tables("playback")


def downgrade() -> None:
    drop_messaging_tables("playback")
