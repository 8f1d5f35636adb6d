"""The caller's own user, and user administration (admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from studio_common.access import Access, access
from studio_common.auth import CurrentUser
from studio_common.db import SessionDep
from studio_common.paging import Page, Paging
from studio_identity.repository import UserFilter
from studio_identity.schemas import RoleIn, RoleName, UserOut
from studio_identity.service import IdentityService

router = APIRouter(tags=["identity"])
admin = APIRouter(prefix="/api/admin/users", tags=["identity admin"])
ADMIN = access(Access.admin)


@router.get("/api/me", response_model=UserOut, response_model_by_alias=True, **access(Access.user))
async def me(principal: CurrentUser, session: SessionDep) -> UserOut:
    """The caller, created from the token's subject and email on the first call."""
    return UserOut.model_validate(await IdentityService(session).me(principal))


@admin.get("", response_model=Page[UserOut], response_model_by_alias=True, **ADMIN)
async def list_users(
    session: SessionDep,
    paging: Paging,
    role: Annotated[RoleName | None, Query()] = None,
    email: Annotated[
        str | None, Query(max_length=320, description="Part of the email, any case")
    ] = None,
) -> Page[UserOut]:
    """Users that are not deleted, oldest first."""
    f = UserFilter(role=role, email=email.strip() if email and email.strip() else None)
    items, total = await IdentityService(session).list_users(f, paging)
    return Page[UserOut].of([UserOut.model_validate(u) for u in items], paging, total)


@admin.put("/{user_id}/role", response_model=UserOut, response_model_by_alias=True, **ADMIN)
async def change_role(
    user_id: uuid.UUID, data: RoleIn, principal: CurrentUser, session: SessionDep
) -> UserOut:
    """Set a user's role; emits `identity.user.role_changed` and writes the role back to Clerk.
    The last admin cannot be demoted (409 `last-admin`)."""
    user = await IdentityService(session).change_role(user_id, data.role, actor=principal)
    return UserOut.model_validate(user)
