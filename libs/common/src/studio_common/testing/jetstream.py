"""Reading what actually landed on a JetStream stream, for assertions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


async def stream_messages(nats_url: str, stream: str, subject: str) -> list[Msg]:
    """Every message currently stored on ``stream`` under ``subject``."""
    nc = await nats.connect(nats_url)
    try:
        # Generous: under a loaded CI machine a consumer create can take seconds.
        js = nc.jetstream(timeout=30)
        sub = await js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=10,
            ),
        )
        out: list[Msg] = []
        while True:
            try:
                batch = await sub.fetch(100, timeout=0.5)
            # nats-py raises its own TimeoutError or, when the deadline runs
            # out between its two pull requests, the builtin one.
            except (TimeoutError, NatsTimeout):
                break
            out.extend(batch)
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def envelope_of(msg: Msg) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(msg.data)
    return body


async def wait_until(
    predicate: Callable[[], Any], *, within: float = 10.0, interval: float = 0.1
) -> Any:
    """Await ``predicate()`` (sync or async) until it returns a truthy value."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
