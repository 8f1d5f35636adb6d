"""users.role_version, and identity.user.created for the users held so far

role_version grows with every role change (and the deletion) of a user; the
role bucket (ADR 7) never lets an older version replace a newer one. Users
whose role was set here before get version 1, so identity's reconciliation
puts them into the bucket on its next start.

Every user held so far is announced once through the outbox
(identity.user.created), so other services learn the id that /api/me returns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 17:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("role_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        schema="identity",
    )
    op.execute(
        "UPDATE identity.users SET role_version = 1 "
        "WHERE role_changed_at IS NOT NULL OR deleted_at IS NOT NULL"
    )
    # The envelope of studio_common.events.Envelope, UserCreatedV1 inside.
    op.execute(
        """
        INSERT INTO identity.outbox (id, event_type, version, envelope)
        SELECT e.id, 'identity.user.created', 1,
               jsonb_build_object(
                   'id', e.id, 'type', 'identity.user.created', 'version', 1,
                   'occurredAt', to_char(now() AT TIME ZONE 'UTC',
                                         'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   'data', jsonb_build_object('userId', e.user_id, 'clerkId', e.clerk_id))
        FROM (SELECT gen_random_uuid() AS id, u.id AS user_id, u.clerk_id
              FROM identity.users u
              WHERE u.deleted_at IS NULL
              ORDER BY u.created_at, u.id) AS e
        """
    )


def downgrade() -> None:
    op.drop_column("users", "role_version", schema="identity")
