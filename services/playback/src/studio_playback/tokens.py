"""A cache of verified bearer tokens in front of the shared JWT verifier.

A player reports its position every few seconds with the same token; the
signature check (RS256) dominates such a request. A token that verified once
is remembered until it expires, but no longer than ``ttl_seconds``, so a key
removed from the JWKS stops being honoured within that time. The key of the
cache is the whole token, signature included: a token that differs in any
byte is verified afresh. Failures are never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from studio_common.auth import Principal, TokenVerifier


class CachedVerifier:
    def __init__(
        self,
        inner: TokenVerifier,
        *,
        max_entries: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self.max_entries = max_entries
        self.ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, Principal]] = {}

    async def verify(self, token: str) -> Principal:
        now = self._clock()
        hit = self._entries.get(token)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._entries[token]
        principal = await self.inner.verify(token)
        until = now + self.ttl
        exp = principal.claims.get("exp")
        if isinstance(exp, int | float):
            until = min(until, float(exp))
        if until > now:
            if len(self._entries) >= self.max_entries:
                # Oldest first (dicts keep insertion order).
                del self._entries[next(iter(self._entries))]
            self._entries[token] = (until, principal)
        return principal
