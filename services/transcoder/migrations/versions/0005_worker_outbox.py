"""worker_outbox: the worker publishes its own events through an outbox of its own

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 21:00:00
"""

from studio_common.migrations import create_messaging_tables, drop_messaging_tables

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    create_messaging_tables("transcoder", outbox="worker_outbox", inbox=None)


def downgrade() -> None:
    drop_messaging_tables("transcoder", outbox="worker_outbox", inbox=None)
