"""Identity's side of the role bucket (ADR 7): it writes what its database committed.

Writes come from identity's own consumers of ``identity.user.role_changed`` and
``identity.user.deleted`` (outbox events exist iff the change committed) and
from :func:`reconcile`, which runs at startup over every user whose role was
ever changed here, so a bucket that was lost or predates a change catches up.
Each value carries the user's ``role_version``; the bucket never takes an
older one (:func:`studio_common.roles.write_role`).
"""

from __future__ import annotations

import logging
import uuid

from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.auth import Role
from studio_common.db import Database
from studio_common.roles import RoleRecord, open_bucket, role_bucket, write_role
from studio_identity.models import User

log = logging.getLogger("studio.identity.roles")

RECONCILE_BATCH = 500


def record_of(user: User) -> RoleRecord:
    return RoleRecord(
        role=Role[user.role],
        version=user.role_version,
        user_id=user.id,
        deleted=user.deleted_at is not None,
    )


class RoleWriter:
    """Writes users' current roles into the bucket beside ``stream``."""

    def __init__(self, stream: str) -> None:
        self.bucket = role_bucket(stream)
        self._kv: KeyValue | None = None

    async def kv(self, js: JetStreamContext) -> KeyValue:
        if self._kv is None:
            self._kv = await open_bucket(js, self.bucket)
        return self._kv

    async def publish(self, js: JetStreamContext, user: User) -> bool:
        try:
            written = await write_role(await self.kv(js), user.clerk_id, record_of(user))
        except Exception:
            # Reopened (or recreated, if it was lost) on the retry.
            self._kv = None
            raise
        if written:
            log.info(
                "role published",
                extra={"user_id": str(user.id), "role": user.role, "version": user.role_version},
            )
        return written

    async def publish_current(
        self, js: JetStreamContext, session: AsyncSession, user_id: uuid.UUID
    ) -> None:
        """The user's role as committed now (not as an event said): a late or
        repeated event never writes an older state."""
        user = await session.get(User, user_id, populate_existing=True)
        if user is not None and user.role_version > 0:
            await self.publish(js, user)


async def reconcile(writer: RoleWriter, js: JetStreamContext, database: Database) -> int:
    """Bring the bucket up to the table for every user ever changed here; how many were behind."""
    behind = 0
    after: uuid.UUID | None = None
    while True:
        async with database.transaction() as session:
            stmt = select(User).where(User.role_version > 0).order_by(User.id)
            if after is not None:
                stmt = stmt.where(User.id > after)
            users = list((await session.scalars(stmt.limit(RECONCILE_BATCH))).all())
        for user in users:
            behind += await writer.publish(js, user)
        if len(users) < RECONCILE_BATCH:
            break
        after = users[-1].id
    log.info("role bucket reconciled", extra={"behind": behind})
    return behind
