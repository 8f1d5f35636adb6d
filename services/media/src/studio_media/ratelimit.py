"""Per-user rate limits that hold across replicas: a fixed window in Redis.

One Lua script increments the caller's counter and starts its window on the
first hit, atomically, so concurrent requests on different replicas can
neither skip the expiry nor count past the limit unnoticed. Should Redis be
unreachable the request is let through and the failure logged: an outage of
the limiter must not take uploads and playback down with it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from studio_common.errors import TooManyRequests

log = logging.getLogger("studio.media.ratelimit")

# KEYS[1] counter; ARGV[1] window in ms. Returns {count, ms left in the window}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    requests: int
    window_seconds: int


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._hit = redis.register_script(_HIT)

    async def hit(self, limit: Limit, subject: str) -> None:
        """Count one request of ``subject``; raises :class:`TooManyRequests` over the limit."""
        key = f"{self.prefix}:{limit.name}:{subject}"
        try:
            count, ttl_ms = await self._hit(keys=[key], args=[limit.window_seconds * 1000])
        except RedisError:
            log.warning("rate limiter unavailable; request allowed", exc_info=True)
            return
        if int(count) > limit.requests:
            retry_after = max(1, math.ceil(int(ttl_ms) / 1000))
            raise TooManyRequests(
                f"At most {limit.requests} {limit.name} requests per "
                f"{limit.window_seconds} s; try again in {retry_after} s.",
                retry_after=retry_after,
            )
