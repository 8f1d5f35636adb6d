"""Storage outages: a gate the worker's intake waits on while S3 does not answer.

An error that says storage (or the way to it) is away — no connection, a
timeout, a 5xx — closes the gate: the worker takes no new job, a background
probe asks the bucket with jittered exponential backoff, and every call that
hit the outage waits for the probe's first success, then runs again. One
WARNING when storage goes away and one when it is back, no traceback per
retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from studio_transcoder.failures import JobFailure

log = logging.getLogger("studio.transcoder.storage")

# S3's answers that mean "not now" rather than "not this request".
_UNAVAILABLE_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "503", "500"}
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether an S3 error says storage is away, not that the request was wrong."""
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, ConnectionError | HTTPClientError):
            return True
        if isinstance(error, ClientError):
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = str(error.response.get("Error", {}).get("Code", ""))
            return status >= 500 or code in _UNAVAILABLE_CODES
    return False


class StorageGate:
    """Open while storage answers; closed (and probed) from the first sign it does not."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[None]],
        *,
        probe_min_seconds: float = 0.5,
        probe_max_seconds: float = 30.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._probe = probe
        self.probe_min_seconds = probe_min_seconds
        self.probe_max_seconds = probe_max_seconds
        self.on_change = on_change
        self._up = asyncio.Event()
        self._up.set()
        self._prober: asyncio.Task[None] | None = None
        self.down_since: float | None = None
        # How many outages began so far: an attempt compares it before and after.
        self.outages = 0

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def report(self, error: BaseException) -> None:
        """A call met an outage: close the gate (once) and start probing."""
        if not self._up.is_set():
            return
        self._up.clear()
        self.down_since = time.monotonic()
        self.outages += 1
        log.warning(
            "storage unreachable: taking no new jobs and retrying until it answers",
            extra={"error": str(error)[:300]},
        )
        if self.on_change is not None:
            self.on_change(False)
        self._prober = asyncio.create_task(self._probe_until_up(), name="storage-probe")

    def remaining(self, tolerance: float) -> float:
        """Seconds left of ``tolerance`` for the current outage (all of it when there is none)."""
        if self.down_since is None or self.is_up:
            return tolerance
        return tolerance - (time.monotonic() - self.down_since)

    async def wait_up(self, within: float) -> bool:
        """True once storage answers again; False if ``within`` seconds pass first."""
        if self._up.is_set():
            return True
        if within <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), within)
        return self._up.is_set()

    async def broke(self, failure: JobFailure, outages_before: int) -> bool:
        """Whether storage (not the job) is why an attempt failed: the failure says
        so, or it is a transient one (ffmpeg lost its source, a probe timed out)
        and storage went away during the attempt or does not answer now."""
        if failure.infrastructure:
            return True
        if failure.permanent:
            return False
        return self.outages != outages_before or not await self.check()

    async def check(self) -> bool:
        """Asks storage now; a failure closes the gate."""
        if not self._up.is_set():
            return False
        try:
            await self._probe()
        except Exception as exc:
            if not is_unavailable(exc):
                return True  # storage answered, even if with a refusal
            self.report(exc)
            return False
        return True

    async def _probe_until_up(self) -> None:
        delay = self.probe_min_seconds
        while True:
            # Full jitter: many workers probing one store do not knock in step.
            await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311
            try:
                await self._probe()
            except Exception as exc:
                if is_unavailable(exc):
                    delay = min(self.probe_max_seconds, delay * 2)
                    continue
            break
        down_for = time.monotonic() - (self.down_since or time.monotonic())
        self.down_since = None
        self._up.set()
        log.warning(
            "storage reachable again: taking jobs",
            extra={"down_seconds": round(down_for, 1)},
        )
        if self.on_change is not None:
            self.on_change(True)

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)
