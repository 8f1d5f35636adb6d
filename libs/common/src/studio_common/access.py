"""Every route declares who may call it, and the declaration is the enforcement.

    @router.get("/api/titles", **access(Access.public))
    @router.post("/api/admin/titles", **access(Access.editor))
    @router.get("/api/users/{user_id}/watchlist", **access(Access.self_or_admin, owner="user_id"))

``access`` returns the route's auth dependency together with an ``x-access``
OpenAPI extension. The authorization-matrix test reads ``x-access`` from every
service's OpenAPI document, fails on any route without it, and calls each route
as anonymous, viewer, another user, editor and admin to check the declaration.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request

from studio_common.auth import Principal, Role, current_user, require_role
from studio_common.errors import Forbidden, NotFound

ACCESS_EXTENSION = "x-access"
OWNER_EXTENSION = "x-access-owner"


class Access(enum.StrEnum):
    public = "public"  # anyone, token optional
    user = "user"  # any signed-in user
    self_or_admin = "self-or-admin"  # the user named in the path, or an admin
    editor = "editor"  # editor or admin
    admin = "admin"


# A path value (not "me") → the token subject of the user it names, None if unknown.
OwnerResolver = Callable[[Request, str], Awaitable[str | None]]


def _self_or_admin(owner: str, resolve: OwnerResolver | None) -> Any:
    async def dependency(
        request: Request, principal: Principal = Depends(current_user)
    ) -> Principal:
        value = request.path_params.get(owner)
        if value == "me":
            request.state.owner_subject = principal.subject
            return principal
        if resolve is not None and value is not None:
            subject = await resolve(request, value)
            if subject is None:
                raise NotFound(f"No user with id {value}.")
            if subject == principal.subject or principal.has_role(Role.admin):
                request.state.owner_subject = subject
                return principal
            raise Forbidden("Only this user or an admin may do this.")
        if principal.has_role(Role.admin):
            return principal
        if value is not None and value == principal.subject:
            return principal
        raise Forbidden("Only this user or an admin may do this.")

    dependency.__name__ = f"self_or_admin_{owner}"
    return dependency


def access(
    level: Access, *, owner: str | None = None, resolve_owner: OwnerResolver | None = None
) -> dict[str, Any]:
    """Keyword arguments for a route decorator: its auth dependency and its declaration.

    A self-or-admin route names the path parameter that holds the user. With
    ``resolve_owner`` that parameter is the service's user id (or ``me``): an
    unknown one is a 404, and the dependency leaves the owner's token subject
    in ``request.state.owner_subject``."""
    extra: dict[str, Any] = {ACCESS_EXTENSION: level.value}
    dependencies: list[Any] = []
    if level is Access.user:
        dependencies.append(Depends(current_user))
    elif level is Access.editor:
        dependencies.append(Depends(require_role(Role.editor)))
    elif level is Access.admin:
        dependencies.append(Depends(require_role(Role.admin)))
    elif level is Access.self_or_admin:
        if owner is None:
            raise ValueError("self-or-admin routes name the path parameter that holds the user")
        extra[OWNER_EXTENSION] = owner
        dependencies.append(Depends(_self_or_admin(owner, resolve_owner)))
    return {"openapi_extra": extra, "dependencies": dependencies}
