"""Bearer JWT verification (RS256 from a JWKS URL) and role-based access.

The same code verifies tokens from Clerk in production and from the identity
service's own issuer in development and tests. ``alg`` is pinned to RS256, so
``none`` and HS256-with-the-public-key (algorithm confusion) are rejected
before any key is used. Every token is checked for its audience (``aud``) or
authorized party (``azp``), whatever the environment; ``sub`` must be a
non-empty string and ``exp``/``nbf``/``iat`` JSON numbers.

The role in the token is a ceiling: identity's current role, projected into
every service (:mod:`studio_common.roles`), can only lower it, so a demotion
takes effect before the token expires (ADR 7).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import httpx
import jwt
from fastapi import Depends, Request

from studio_common.errors import Forbidden, ServiceUnavailable, Unauthorized

if TYPE_CHECKING:
    from jwt.types import Options

ALGORITHMS = ["RS256"]
# identity's users.clerk_id is this wide; Clerk user ids are about 32 characters.
MAX_SUBJECT_LENGTH = 191
NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")

log = logging.getLogger("studio.auth")


class Role(enum.IntEnum):
    viewer = 1
    editor = 2
    admin = 3

    @classmethod
    def parse(cls, value: object) -> Role:
        if isinstance(value, str) and value in cls.__members__:
            return cls[value]
        return cls.viewer


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role
    email: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, repr=False)

    def has_role(self, role: Role) -> bool:
        return self.role >= role


class JwksCache:
    """Caches a JWKS; an unknown ``kid`` triggers at most one refetch per interval."""

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = 300,
        min_refetch_seconds: float = 10,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl_seconds
        self.min_refetch = min_refetch_seconds
        self._client = client
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def _fetch(self) -> None:
        # Counted before the request: a failing endpoint is retried no more
        # often than a healthy one is refetched.
        self._attempted_at = self._clock()
        client = self._client or httpx.AsyncClient(timeout=5)
        try:
            resp = await client.get(self.url)
            resp.raise_for_status()
            data = resp.json()
        finally:
            if self._client is None:
                await client.aclose()
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("the JWKS document has no 'keys' list")
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in data["keys"]:
            if not isinstance(jwk, dict):
                continue
            kid = jwk.get("kid")
            if (
                jwk.get("kty") != "RSA"
                or jwk.get("use", "sig") != "sig"
                or not isinstance(kid, str)
            ):
                continue
            try:
                keys[kid] = jwt.PyJWK(jwk, algorithm="RS256")
            except jwt.PyJWTError:
                # One unusable key must not take the others down with it.
                log.warning("skipping an unusable JWKS key", extra={"kid": kid})
        self._keys = keys
        self._fetched_at = self._clock()
        self.fetch_count += 1

    async def get(self, kid: str) -> jwt.PyJWK | None:
        now = self._clock()
        fresh = self._fetched_at is not None and now - self._fetched_at < self.ttl
        if fresh and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.ttl
            may_refetch = self._attempted_at is None or now - self._attempted_at >= self.min_refetch
            if may_refetch and (stale or kid not in self._keys):
                try:
                    await self._fetch()
                except (httpx.HTTPError, ValueError):
                    if not self._keys:
                        raise
                    log.warning("JWKS refetch failed; serving the cached keys", exc_info=True)
            elif not self._keys:
                raise ValueError("no signing keys: the last JWKS fetch failed")
            return self._keys.get(kid)


class JwtVerifier:
    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str | None = None,
        authorized_parties: list[str] | None = None,
        role_claim: str = "role",
        leeway_seconds: int = 30,
    ) -> None:
        if not audience and not authorized_parties:
            # Fail closed: a verifier that checks neither would take a token
            # minted for any other application of the same issuer.
            raise ValueError(
                "JWT verification needs an audience: set STUDIO_JWT_AUDIENCE, or "
                "STUDIO_JWT_AUTHORIZED_PARTIES for Clerk session tokens"
            )
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.authorized_parties = authorized_parties or []
        self.role_claim = role_claim.split(".")
        self.leeway = leeway_seconds

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The token is malformed.") from exc
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("The token's algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("The token names no key.")
        try:
            key = await self.jwks.get(kid)
        except (httpx.HTTPError, ValueError) as exc:
            # Not the caller's fault: a 401 would send a good token to sign in again.
            raise ServiceUnavailable(
                "The token's signing keys cannot be fetched right now; try again shortly.",
                headers={"Retry-After": "1"},
            ) from exc
        if key is None:
            raise Unauthorized("The token is signed by an unknown key.")
        options: Options = {
            "require": ["exp", "iss", "sub"],
            "verify_aud": bool(self.audience),
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("The token is not valid yet.") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized("The token's issuer is not trusted.") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized("The token is meant for another audience.") from exc
        except jwt.MissingRequiredClaimError as exc:
            if exc.claim == "aud":
                raise Unauthorized("The token names no audience.") from exc
            raise Unauthorized(f"The token has no {exc.claim} claim.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("The token is invalid.") from exc
        if self.authorized_parties and claims.get("azp") not in self.authorized_parties:
            raise Unauthorized("The token was issued to an unknown party.")
        for name in NUMERIC_DATE_CLAIMS:
            # PyJWT takes "1700000000" as a date too; RFC 7519 says NumericDate.
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise Unauthorized(f"The token's {name} is not a number.")
        subject = claims["sub"]
        if (
            not isinstance(subject, str)
            or not subject
            or len(subject) > MAX_SUBJECT_LENGTH
            or not subject.isprintable()
            or subject != subject.strip()
        ):
            raise Unauthorized("The token's subject is not a usable user id.")
        return Principal(
            subject=subject,
            role=Role.parse(self._role_of(claims)),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            claims=claims,
        )

    def _role_of(self, claims: dict[str, Any]) -> object:
        node: object = claims
        for part in self.role_claim:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node


class TokenVerifier(Protocol):
    """What turns a bearer token into a principal: a :class:`JwtVerifier`, or a
    cache in front of one."""

    async def verify(self, token: str) -> Principal: ...


def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use the 'Authorization: Bearer <token>' header.")
    return token.strip()


class RoleSource(Protocol):
    def effective(self, principal: Principal) -> Principal: ...


def _effective(request: Request, principal: Principal) -> Principal:
    """The principal with identity's current role applied (never above the token's).

    Applied after verification, so a cache of verified tokens (playback's)
    never holds on to a role that was taken away."""
    roles: RoleSource | None = getattr(request.app.state, "roles", None)
    return principal if roles is None else roles.effective(principal)


async def optional_user(request: Request) -> Principal | None:
    token = _bearer(request)
    if token is None:
        return None
    principal = _effective(request, await get_verifier(request).verify(token))
    request.state.principal = principal
    return principal


async def current_user(request: Request) -> Principal:
    token = _bearer(request)
    if token is None:
        raise Unauthorized()
    principal = _effective(request, await get_verifier(request).verify(token))
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
OptionalUser = Annotated[Principal | None, Depends(optional_user)]


def require_role(role: Role | str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    needed = Role[role] if isinstance(role, str) else role

    async def dependency(principal: CurrentUser) -> Principal:
        if not principal.has_role(needed):
            raise Forbidden(f"This action needs the {needed.name} role.")
        return principal

    dependency.__name__ = f"require_{needed.name}"
    return dependency


EditorUser = Annotated[Principal, Depends(require_role(Role.editor))]
AdminUser = Annotated[Principal, Depends(require_role(Role.admin))]
