"""The development issuer: its JWKS, and (development only) a token endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from studio_common.access import Access, access
from studio_common.errors import RATE_LIMITED, ValidationFailed
from studio_identity.context import IdentityDep
from studio_identity.issuer import issue_dev_token
from studio_identity.schemas import DevTokenIn, DevTokenOut

jwks_router = APIRouter(tags=["issuer"])
dev_router = APIRouter(tags=["issuer (development)"])


@jwks_router.get("/.well-known/jwks.json", **access(Access.public))
async def jwks(ctx: IdentityDep) -> JSONResponse:
    """The development issuer's public keys (the current one and recently rotated ones).
    Empty in production, where Clerk issues the tokens."""
    keys = ctx.dev_keys
    body: dict[str, Any] = keys.jwks() if keys is not None else {"keys": []}
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})


@dev_router.post(
    "/api/dev/token",
    response_model=DevTokenOut,
    response_model_by_alias=True,
    responses=RATE_LIMITED,
    **access(Access.public),
)
async def dev_token(data: DevTokenIn, request: Request, ctx: IdentityDep) -> DevTokenOut:
    """A token for any email and role, signed by the development key. Development only."""
    settings, keys = ctx.settings, ctx.dev_keys
    if keys is None:  # not registered outside development; kept as a second guard
        raise RuntimeError("the development issuer is disabled")
    limiter = ctx.dev_token_limiter
    # The peer, or the client a trusted proxy names (STUDIO_TRUSTED_PROXIES).
    limiter.hit(request.client.host if request.client else "unknown")
    ttl = data.ttl_seconds
    if ttl is not None and ttl > settings.dev_token_max_ttl_seconds:
        raise ValidationFailed(
            f"ttlSeconds may be at most {settings.dev_token_max_ttl_seconds}.",
            extra={
                "errors": [
                    {
                        "pointer": "body.ttlSeconds",
                        "message": f"at most {settings.dev_token_max_ttl_seconds}",
                        "code": "less_than_equal",
                    }
                ]
            },
        )
    issued = issue_dev_token(
        settings, keys, role=data.role, email=data.email, sub=data.sub, ttl_seconds=ttl
    )
    return DevTokenOut(token=issued.token, expires_at=issued.expires_at, sub=issued.subject)
