"""The development token route's rate limit: a fixed window per client address.

In memory, on purpose: the route exists only in development, where identity
runs as one process, and it must not need Redis to stay bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from studio_common.errors import TooManyRequests


class DevTokenLimiter:
    def __init__(
        self, limit: int, window_seconds: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = float(window_seconds)
        self.clock = clock
        # client -> (window start, count)
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, client: str) -> None:
        """Count one token for ``client``; :class:`TooManyRequests` over the limit."""
        now = self.clock()
        start, count = self._windows.get(client, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.limit:
            retry_after = max(1, math.ceil(start + self.window - now))
            raise TooManyRequests(
                f"At most {self.limit} development tokens per {self.window:.0f} s from one "
                f"address; try again in {retry_after} s.",
                retry_after=retry_after,
            )
        self._windows[client] = (start, count + 1)
        if len(self._windows) > 10_000:  # forget closed windows of past clients
            self._windows = {c: w for c, w in self._windows.items() if now - w[0] < self.window}
