"""identity schema: its outbox and inbox (revision 0001, created 2026-11-26)."""

from studio_common.migrations import messaging_migration

revision: str = "0001"
down_revision: str | None = None
upgrade, downgrade = messaging_migration("identity")
