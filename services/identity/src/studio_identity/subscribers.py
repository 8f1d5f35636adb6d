"""identity.user.role_changed → the role is written back to Clerk.

The handler writes the user's *current* role, not the event's: if a retry
makes two changes arrive out of order, Clerk still ends with the latest one.
A failure is retried with backoff by the consumer and dead-lettered at last.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.consumer import EventConsumers
from studio_common.events import Envelope, UserRoleChangedV1
from studio_identity.clerk import RoleSink
from studio_identity.repository import UserRepository


def register(consumers: EventConsumers, sink: RoleSink) -> None:
    async def write_back(
        event: UserRoleChangedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        user = await UserRepository(session).get(event.user_id)
        if user is None or user.deleted_at is not None:
            return
        await sink.set_role(user.clerk_id, user.role)

    consumers.add(UserRoleChangedV1, write_back)
