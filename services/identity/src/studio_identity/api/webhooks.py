"""Clerk user webhooks, verified by their Svix signature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from studio_common.access import Access, access
from studio_common.db import SessionDep
from studio_common.errors import BadRequest, PayloadTooLarge
from studio_identity.clerk import (
    SVIX_HEADERS,
    ClerkEvent,
    InvalidWebhookSignature,
    WebhookNotConfigured,
    verify_svix,
)
from studio_identity.context import IdentityDep
from studio_identity.schemas import WebhookResult
from studio_identity.service import IdentityService

router = APIRouter(tags=["webhooks"])
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    svix_id: str
    event: ClerkEvent


async def verified_clerk_webhook(request: Request, ctx: IdentityDep) -> VerifiedWebhook:
    headers = {name: request.headers.get(name, "") for name in SVIX_HEADERS}
    if not all(headers.values()):
        raise InvalidWebhookSignature(
            "The svix-id, svix-timestamp and svix-signature headers are required."
        )
    secret = ctx.settings.clerk_webhook_secret.get_secret_value()
    if not secret:
        raise WebhookNotConfigured("IDENTITY_CLERK_WEBHOOK_SECRET is not set.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    verify_svix(secret, body, headers)
    try:
        event = ClerkEvent.model_validate_json(body)
    except ValidationError as exc:
        raise BadRequest("The webhook body is not a Clerk event.") from exc
    return VerifiedWebhook(svix_id=headers["svix-id"], event=event)


@router.post(
    "/api/webhooks/clerk",
    response_model=WebhookResult,
    responses={
        400: {"description": "A bad or old signature, or a body that is not a Clerk event"},
        413: {"description": f"A body over {MAX_BODY_BYTES} bytes"},
    },
    **access(Access.public),
)
async def clerk_webhook(
    webhook: Annotated[VerifiedWebhook, Depends(verified_clerk_webhook)], session: SessionDep
) -> WebhookResult:
    """`user.created`, `user.updated` and `user.deleted` from Clerk. Each `svix-id` is applied
    once; a replay answers `duplicate`. A bad or old signature is 400 `invalid-webhook-signature`."""
    status = await IdentityService(session).apply_clerk_event(webhook.event, webhook.svix_id)
    return WebhookResult(status=status)
