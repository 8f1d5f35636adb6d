"""Development tokens: shaped like the production ones, so the same verifier accepts them.

The role is written at the configured claim path (``jwt_role_claim``, e.g.
``public_metadata.role``), ``iss`` is the configured ``jwt_issuer``, and ``aud``
and ``azp`` are set when the services check them.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from studio_identity.config import IdentitySettings
from studio_identity.keys import DevKeyStore

REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "azp", "exp", "nbf", "iat", "jti", "email"})


def dev_key_store(settings: IdentitySettings) -> DevKeyStore:
    return DevKeyStore(settings.dev_key_path, grace_seconds=settings.dev_key_grace_seconds)


def dev_subject(email: str) -> str:
    """A stable subject per email, shaped like a Clerk user id."""
    return "user_dev_" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


def set_claim(claims: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    if parts[0] in REGISTERED_CLAIMS:
        raise ValueError(f"the role claim path {path!r} would overwrite a registered claim")
    node = claims
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"the role claim path {path!r} crosses a non-object claim")
        node = child
    node[parts[-1]] = value


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime
    subject: str


def issue_dev_token(
    settings: IdentitySettings,
    keys: DevKeyStore,
    *,
    role: str,
    email: str | None = None,
    sub: str | None = None,
    ttl_seconds: int | None = None,
    now: float | None = None,
) -> IssuedToken:
    ttl = ttl_seconds or settings.dev_token_default_ttl_seconds
    if not 0 < ttl <= settings.dev_token_max_ttl_seconds:
        raise ValueError(f"ttl must be between 1 and {settings.dev_token_max_ttl_seconds} seconds")
    issued = int(time.time() if now is None else now)
    subject = sub or (dev_subject(email) if email else f"user_dev_{uuid.uuid4().hex[:24]}")
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
    }
    if email:
        claims["email"] = email
    audience = settings.jwt_expected_audience
    if audience:
        claims["aud"] = audience
    if settings.jwt_authorized_parties:
        claims["azp"] = settings.jwt_authorized_parties[0]
    set_claim(claims, settings.jwt_role_claim, role)
    return IssuedToken(
        token=keys.sign(claims),
        expires_at=datetime.fromtimestamp(issued + ttl, UTC),
        subject=subject,
    )
