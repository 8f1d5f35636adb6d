"""Clerk: role write-back through the Backend API, and verified user webhooks.

Identity decides roles; Clerk carries them to the session tokens as
``public_metadata.role``. A :class:`RoleSink` writes a role there; the Clerk
implementation PATCHes the user's metadata (Clerk deep-merges it, so other
metadata keys stay), the no-op one is used when no secret key is configured.

Webhooks arrive signed by Svix (``svix-id``, ``svix-timestamp``,
``svix-signature``); ``svix.webhooks.Webhook`` checks the HMAC and the
5-minute timestamp window.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field
from svix.webhooks import Webhook, WebhookVerificationError

from studio_common.errors import ProblemError

log = logging.getLogger("studio.identity.clerk")

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


class RoleSink(Protocol):
    async def set_role(self, clerk_id: str, role: str) -> None: ...

    async def aclose(self) -> None: ...


class RoleSinkError(RuntimeError):
    """The role could not be written; the caller retries later."""


class NoOpRoleSink:
    """Development and tests without Clerk: the role lives only in identity's table."""

    async def set_role(self, clerk_id: str, role: str) -> None:
        log.debug("no Clerk secret key; role kept locally", extra={"clerk_id": clerk_id})

    async def aclose(self) -> None:
        return None


class ClerkRoleSink:
    def __init__(
        self,
        secret_key: str,
        *,
        base_url: str = "https://api.clerk.com/v1",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not secret_key:
            raise ValueError("ClerkRoleSink needs a secret key")
        self._secret_key = secret_key
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport)
        return self._client

    async def set_role(self, clerk_id: str, role: str) -> None:
        url = f"{self.base_url}/users/{quote(clerk_id, safe='')}/metadata"
        try:
            resp = await self._http().patch(
                url,
                json={"public_metadata": {"role": role}},
                headers={"Authorization": f"Bearer {self._secret_key}"},
            )
        except httpx.HTTPError as exc:
            raise RoleSinkError(f"Clerk is not reachable: {exc!r}") from exc
        if resp.status_code == 404:
            # Deleted in Clerk meanwhile (its user.deleted webhook follows): nothing to do.
            log.warning(
                "Clerk does not know the user; role not written", extra={"clerk_id": clerk_id}
            )
            return
        if resp.status_code >= 400:
            raise RoleSinkError(f"Clerk answered {resp.status_code}: {resp.text[:300]}")
        log.info("role written to Clerk", extra={"clerk_id": clerk_id, "role": role})

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# --- webhooks -------------------------------------------------------------------------


class InvalidWebhookSignature(ProblemError):
    status, slug, title = 400, "invalid-webhook-signature", "The webhook signature is not valid"


class WebhookNotConfigured(ProblemError):
    status, slug, title = 503, "webhook-not-configured", "Webhooks are not configured"


def verify_svix(secret: str, body: bytes, headers: dict[str, str]) -> None:
    """Raise :class:`InvalidWebhookSignature` unless Svix signed ``body`` within 5 minutes."""
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError as exc:
        raise InvalidWebhookSignature(str(exc)) from exc
    except ValueError as exc:  # malformed signature list or base64, a body that is not UTF-8
        raise InvalidWebhookSignature("The signature headers are malformed.") from exc


class ClerkModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ClerkEmail(ClerkModel):
    id: str | None = None
    email_address: str = Field(max_length=320)


class ClerkUser(ClerkModel):
    id: str = Field(min_length=1, max_length=191)
    email_addresses: list[ClerkEmail] = Field(default_factory=list)
    primary_email_address_id: str | None = None
    public_metadata: dict[str, Any] = Field(default_factory=dict)
    # Milliseconds since the epoch, as Clerk sends them.
    updated_at: int | None = None
    deleted: bool = False

    @property
    def primary_email(self) -> str | None:
        for email in self.email_addresses:
            if email.id is not None and email.id == self.primary_email_address_id:
                return email.email_address
        return self.email_addresses[0].email_address if self.email_addresses else None

    @property
    def role(self) -> str | None:
        role = self.public_metadata.get("role")
        return role if role in ("viewer", "editor", "admin") else None

    @property
    def updated(self) -> datetime | None:
        return datetime.fromtimestamp(self.updated_at / 1000, UTC) if self.updated_at else None


class ClerkEvent(ClerkModel):
    type: str = Field(min_length=1, max_length=120)
    data: dict[str, Any]
    timestamp: int | None = None
