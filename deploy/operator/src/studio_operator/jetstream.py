"""Reading a JetStream consumer's queue: how much waits and how much is in flight."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import nats
from nats.js.errors import NotFoundError

from studio_operator.decision import QueueLoad

log = logging.getLogger(__name__)


class QueueReadError(RuntimeError):
    """NATS did not answer, or answered with something other than the consumer."""


class LoadReader(Protocol):
    async def read(self, nats_url: str, stream: str, consumer: str) -> QueueLoad | None:
        """The consumer's load, or None when the stream or consumer does not exist."""
        ...


def load_from_consumer_info(info: Any) -> QueueLoad:
    """``num_pending``: messages the consumer has not delivered yet;
    ``num_ack_pending``: delivered and not yet acknowledged (running jobs, and
    jobs handed back with a delay that wait for redelivery)."""
    return QueueLoad(
        pending=int(info.num_pending or 0),
        in_flight=int(info.num_ack_pending or 0),
    )


class JetStreamReader:
    """Keeps one connection per NATS URL; a failed one is dropped and redialled
    on the next read."""

    def __init__(self, *, connect_timeout: float = 5.0, request_timeout: float = 5.0) -> None:
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._connections: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def read(self, nats_url: str, stream: str, consumer: str) -> QueueLoad | None:
        nc = await self._connection(nats_url)
        try:
            info = await nc.jetstream(timeout=self._request_timeout).consumer_info(stream, consumer)
        except NotFoundError:
            return None
        except Exception as exc:
            await self._drop(nats_url)
            raise QueueReadError(
                f"consumer {stream}/{consumer} at {nats_url}: {type(exc).__name__}: {exc}"
            ) from exc
        return load_from_consumer_info(info)

    async def _connection(self, nats_url: str) -> Any:
        async with self._lock:
            nc = self._connections.get(nats_url)
            if nc is not None and nc.is_connected:
                return nc
            if nc is not None:
                await _close_quietly(nc)
            try:
                # nats-py keeps retrying a server that refuses until it has been
                # tried max_reconnect_attempts times; one retry, then give up.
                nc = await asyncio.wait_for(
                    nats.connect(
                        nats_url,
                        connect_timeout=self._connect_timeout,
                        allow_reconnect=False,
                        max_reconnect_attempts=1,
                        reconnect_time_wait=0.5,
                        name="studio-operator",
                        error_cb=_log_error,
                    ),
                    timeout=self._connect_timeout * 3,
                )
            except Exception as exc:
                self._connections.pop(nats_url, None)
                raise QueueReadError(
                    f"cannot connect to {nats_url}: {type(exc).__name__}: {exc}"
                ) from exc
            self._connections[nats_url] = nc
            return nc

    async def _drop(self, nats_url: str) -> None:
        async with self._lock:
            nc = self._connections.pop(nats_url, None)
        if nc is not None:
            await _close_quietly(nc)

    async def close(self) -> None:
        async with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for nc in connections:
            await _close_quietly(nc)


async def _close_quietly(nc: Any) -> None:
    try:
        await nc.close()
    except Exception:  # closing a broken connection may fail; it is gone either way
        log.debug("closing a NATS connection failed", exc_info=True)


async def _log_error(exc: Exception) -> None:
    log.warning("NATS connection error: %s", exc)
