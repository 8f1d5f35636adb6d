"""Identity's own events → the role bucket and Clerk.

``identity.user.role_changed``: the user's *current* role goes into the role
bucket (ADR 7: every service sees a demotion within about a second) and then
back to Clerk. Both write the current state, not the event's: if a retry
makes two changes arrive out of order, both still end with the latest one.
``identity.user.deleted``: the bucket marks the user deleted (no privileges).
A failure is retried with backoff by the consumer and dead-lettered at last.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.consumer import EventConsumers
from studio_common.events import Envelope, UserDeletedV1, UserRoleChangedV1
from studio_identity.clerk import RoleSink
from studio_identity.repository import UserRepository
from studio_identity.roles import RoleWriter


def register(consumers: EventConsumers, sink: RoleSink, writer: RoleWriter) -> None:
    def js() -> JetStreamContext:
        return consumers.js

    async def on_role_changed(
        event: UserRoleChangedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        # The bucket first: revocation must not wait for Clerk.
        await writer.publish_current(js(), session, event.user_id)
        user = await UserRepository(session).get(event.user_id)
        if user is None or user.deleted_at is not None:
            return
        await sink.set_role(user.clerk_id, user.role)

    async def on_user_deleted(
        event: UserDeletedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        if event.user_id is not None:
            await writer.publish_current(js(), session, event.user_id)

    consumers.add(UserRoleChangedV1, on_role_changed)
    consumers.add(UserDeletedV1, on_user_deleted)
