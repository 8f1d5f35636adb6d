"""NATS connections that never give up and say so once per state change.

nats-py's defaults close a connection for good after 60 failed reconnects
2 s apart; every pull loop then fails at once, forever. A :class:`NatsLink`
gives a process's one nats-py connection (a service's or a worker's alike)
the options to reconnect forever with capped, jittered backoff, logs one WARNING when the connection drops and one when it
is back, keeps a ``studio_nats_connected`` gauge, and lets fetch loops wait
for the connection instead of spinning on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger("studio.nats")
T = TypeVar("T")

# A ping unanswered this often marks a silently dead server (a partition, not a
# stopped process, which closes the socket) within about a minute.
PING_INTERVAL_SECONDS = 20
MAX_OUTSTANDING_PINGS = 3


def reconnect_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before reconnect ``attempt`` (0 = the first): doubling from
    ``base`` up to ``cap``, drawn from the upper half so that a fleet of
    processes losing the same server does not return in one wave."""
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


class NatsUnavailable(RuntimeError):
    """NATS did not answer while the process was starting."""


async def connect_within(connecting: Awaitable[T], seconds: float) -> T:
    """The first connection, or :class:`NatsUnavailable` after ``seconds``.

    With unlimited reconnects nats-py also retries the first connection
    forever; a process waiting there has not finished starting and (under
    uvicorn) ignores SIGTERM. Giving up lets its supervisor restart it instead.
    """
    try:
        return await asyncio.wait_for(connecting, seconds)
    except TimeoutError:
        raise NatsUnavailable(f"NATS did not answer within {seconds:g} s of starting") from None


class NatsLink:
    """One process's NATS connection state, and the options that keep it alive."""

    def __init__(
        self,
        service: str,
        *,
        registry: CollectorRegistry | None = None,
        reconnect_base_seconds: float = 0.5,
        reconnect_max_seconds: float = 10.0,
    ) -> None:
        self.service = service
        self.reconnect_base_seconds = reconnect_base_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self._connected = asyncio.Event()
        self._closing = False
        self._ever_connected = False
        self._waiting_logged = False
        self._listeners: list[Callable[[], None]] = []
        self._gauge: Gauge | None = None
        if registry is not None:
            self._gauge = Gauge(
                "studio_nats_connected",
                "1 while the process's NATS connection is up, 0 while it reconnects.",
                ["service"],
                registry=registry,
            )
            self._gauge.labels(service).set(0)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def state(self) -> str:
        if self.connected:
            return "ok"
        return "closed" if self._closing else "reconnecting"

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` each time the connection is back (e.g. to wake a relay)."""
        self._listeners.append(listener)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        return {
            "max_reconnect_attempts": -1,
            "reconnect_to_server_handler": self._next_server,
            "ping_interval": PING_INTERVAL_SECONDS,
            "max_outstanding_pings": MAX_OUTSTANDING_PINGS,
            "error_cb": self._error,
            "disconnected_cb": self._disconnected,
            "reconnected_cb": self._reconnected,
            "closed_cb": self._closed,
        }

    def mark_connected(self) -> None:
        """The first connection succeeded (nats-py calls no callback for it)."""
        self._set(True)

    def mark_closing(self) -> None:
        """The process closes the connection on purpose: not an outage."""
        self._closing = True

    async def wait_connected(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the connection; True if it is up."""
        if self.connected:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within)
        return self.connected

    def _set(self, up: bool) -> None:
        if up:
            self._ever_connected = True
            self._connected.set()
        else:
            self._connected.clear()
        if self._gauge is not None:
            self._gauge.labels(self.service).set(1 if up else 0)

    def _next_server(self, servers: list[Any], _info: dict[str, Any]) -> tuple[Any, float]:
        server = min(servers, key=lambda s: s.reconnects)
        delay = reconnect_delay(
            server.reconnects, base=self.reconnect_base_seconds, cap=self.reconnect_max_seconds
        )
        return server, delay

    async def _error(self, error: Exception) -> None:
        # Each failed attempt lands here; the state change is logged once.
        if not self._ever_connected and not self._waiting_logged:
            self._waiting_logged = True
            log.warning("NATS not reachable; waiting for it", extra={"service": self.service})
        log.debug("NATS connection error: %r", error)

    async def _disconnected(self) -> None:
        if self.connected and not self._closing:
            log.warning("NATS disconnected; reconnecting", extra={"service": self.service})
        self._set(False)

    async def _reconnected(self) -> None:
        self._set(True)
        log.warning("NATS reconnected", extra={"service": self.service})
        for listener in self._listeners:
            listener()

    async def _closed(self) -> None:
        self._set(False)
        if not self._closing:
            log.warning("NATS connection closed", extra={"service": self.service})
