"""Identity use cases. Each runs in the caller's transaction and writes its
events to the outbox in that same transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.auth import Principal
from studio_common.errors import Conflict, Forbidden, NotFound, ProblemError, ValidationFailed
from studio_common.events import UserCreatedV1, UserDeletedV1, UserRoleChangedV1
from studio_common.outbox import enqueue
from studio_common.paging import PageParams
from studio_identity.clerk import ClerkEvent, ClerkUser
from studio_identity.models import User, messaging
from studio_identity.repository import UserFilter, UserRepository
from studio_identity.schemas import WebhookStatus

log = logging.getLogger("studio.identity")

WEBHOOK_INBOX = "clerk-webhook"
# svix-ids are strings; the inbox keys events by UUID.
_SVIX_NAMESPACE = uuid.UUID("5b0d3f43-3f0e-4d55-9a3e-6f4f1c1e7a10")


class AccountDeleted(ProblemError):
    status, slug, title = 403, "account-deleted", "This account was deleted"


class LastAdmin(Conflict):
    slug, title = "last-admin", "The last admin cannot be demoted"


class _DeletedUser(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=191)


def _now() -> datetime:
    return datetime.now(UTC)


class IdentityService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.users = UserRepository(session)

    # --- the caller ---------------------------------------------------------------

    async def me(self, principal: Principal) -> User:
        """The caller's user, created from the token on first sight."""
        user = await self.users.by_clerk_id(principal.subject)
        if user is None:
            user = await self.users.insert_if_absent(
                principal.subject, email=principal.email, role=principal.role.name
            )
            if user is not None:
                await self._announce(user)
                log.info("user created on first sight", extra={"clerk_id": principal.subject})
            else:  # created by a concurrent first request
                user = await self.users.by_clerk_id(principal.subject)
            if user is None:
                raise RuntimeError("a user vanished between insert and select")
        if user.deleted_at is not None:
            raise AccountDeleted()
        if user.email is None and principal.email:
            user.email = principal.email
            user = await self.users.save(user)
        return user

    async def _announce(self, user: User) -> None:
        await enqueue(
            self.session, messaging, UserCreatedV1(user_id=user.id, clerk_id=user.clerk_id)
        )

    # --- administration --------------------------------------------------------------

    async def list_users(self, f: UserFilter, paging: PageParams) -> tuple[list[User], int]:
        return await self.users.list_page(f, offset=paging.offset, limit=paging.size)

    async def change_role(self, user_id: uuid.UUID, role: str, *, actor: Principal) -> User:
        acting = await self.users.by_clerk_id(actor.subject)
        # Admin rows first, then the target: two admins demoting each other
        # queue on the same locks, and the second sees one admin left.
        admins = await self.users.lock_active_admins()
        # The actor's current role here, not the token's: a demoted admin whose
        # token still says admin cannot promote anyone, themselves included.
        # Read under the admins' locks, so a concurrent demotion of the actor
        # is either seen here or waits for this change. An actor identity has
        # never seen has only the token's role to go by (ADR 7).
        if acting is not None and acting.id not in admins:
            raise Forbidden("Only a current admin may change roles.")
        user = await self.users.get(user_id, for_update=True)
        if user is None or user.deleted_at is not None:
            raise NotFound(f"No user with id {user_id}.")
        if user.role == role:
            return user
        if user.role == "admin" and user.id in admins and len(admins) <= 1:
            raise LastAdmin("Promote another user to admin before demoting the last one.")
        old_role = user.role
        user.role = role
        user.role_changed_at = _now()
        user.role_version += 1
        user = await self.users.save(user)
        await enqueue(
            self.session,
            messaging,
            UserRoleChangedV1(
                user_id=user.id, clerk_id=user.clerk_id, old_role=old_role, new_role=role
            ),
        )
        log.info(
            "role changed",
            extra={"user_id": str(user.id), "old": old_role, "new": role, "by": actor.subject},
        )
        return user

    # --- Clerk webhooks --------------------------------------------------------------

    async def apply_clerk_event(self, event: ClerkEvent, svix_id: str) -> WebhookStatus:
        """Apply a verified webhook once per svix-id: processed, duplicate or ignored."""
        inbox = messaging.inbox
        first = (
            await self.session.execute(
                insert(inbox)
                .values(
                    consumer=WEBHOOK_INBOX,
                    event_id=uuid.uuid5(_SVIX_NAMESPACE, svix_id),
                    event_type=event.type[:120],
                )
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
        ).first()
        if first is None:
            log.info("webhook replay ignored", extra={"svix_id": svix_id})
            return "duplicate"
        try:
            if event.type in ("user.created", "user.updated"):
                await self._upsert_from_clerk(ClerkUser.model_validate(event.data))
                return "processed"
            if event.type == "user.deleted":
                await self._delete_from_clerk(_DeletedUser.model_validate(event.data).id)
                return "processed"
        except ValidationError as exc:
            raise ValidationFailed(
                "The webhook's user object is not usable.",
                extra={
                    "errors": [
                        {
                            "pointer": "data." + ".".join(str(p) for p in e["loc"]),
                            "message": e["msg"],
                            "code": e["type"],
                        }
                        for e in exc.errors()
                    ]
                },
            ) from exc
        return "ignored"

    async def _upsert_from_clerk(self, data: ClerkUser) -> None:
        user = await self.users.by_clerk_id(data.id, for_update=True)
        if user is None:
            created = await self.users.insert_if_absent(
                data.id,
                email=data.primary_email,
                role=data.role or "viewer",
                role_changed_at=data.updated,
                clerk_updated_at=data.updated,
            )
            if created is not None:
                await self._announce(created)
                return
            user = await self.users.by_clerk_id(data.id, for_update=True)
            if user is None:
                raise RuntimeError("a user vanished between insert and select")
        if user.deleted_at is not None:
            return  # deletion is final; a late created/updated never revives a user
        updated = data.updated
        if (
            updated is not None
            and user.clerk_updated_at is not None
            and updated <= user.clerk_updated_at
        ):
            log.info("stale Clerk update ignored", extra={"clerk_id": data.id})
            return
        user.email = data.primary_email
        if updated is not None:
            user.clerk_updated_at = updated
        new_role = data.role
        # A role set here after Clerk's change wins over it (the write-back follows).
        newer = updated is None or user.role_changed_at is None or updated > user.role_changed_at
        old_role = user.role
        if new_role is not None and new_role != old_role and newer:
            user.role = new_role
            user.role_changed_at = updated or _now()
            user.role_version += 1
            await enqueue(
                self.session,
                messaging,
                UserRoleChangedV1(
                    user_id=user.id, clerk_id=user.clerk_id, old_role=old_role, new_role=new_role
                ),
            )
        await self.users.save(user)

    async def _delete_from_clerk(self, clerk_id: str) -> None:
        user = await self.users.by_clerk_id(clerk_id, for_update=True)
        if user is None:
            # Never seen here: keep a tombstone so a late user.created cannot
            # bring it back; other services may still hold data for it.
            tombstone = await self.users.insert_if_absent(
                clerk_id, deleted_at=_now(), role_version=1
            )
            if tombstone is not None:
                await enqueue(
                    self.session, messaging, UserDeletedV1(user_id=tombstone.id, clerk_id=clerk_id)
                )
                return
            user = await self.users.by_clerk_id(clerk_id, for_update=True)
        if user is None or user.deleted_at is not None:
            return
        user.deleted_at = _now()
        user.email = None
        user.role_version += 1
        await self.users.save(user)
        await enqueue(self.session, messaging, UserDeletedV1(user_id=user.id, clerk_id=clerk_id))
        log.info("user deleted", extra={"clerk_id": clerk_id})
