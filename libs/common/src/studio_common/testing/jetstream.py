"""Putting events on a JetStream stream and reading what actually landed there, for assertions."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from studio_common.events import Envelope, subject_for


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


async def published_once(read: Callable[[], Awaitable[list[Msg]]]) -> dict[str, Any]:
    """The envelope of the one message ``read()`` finds, once it is there and a
    second, wrongly duplicated publish has had a second to show up; its
    Nats-Msg-Id is the event id, so the stream's duplicate window can drop a
    relay's retry."""
    await wait_until(read)
    await asyncio.sleep(1.0)
    msgs = await read()
    assert len(msgs) == 1, [envelope_of(m) for m in msgs]
    env = envelope_of(msgs[0])
    assert msgs[0].headers is not None
    assert msgs[0].headers["Nats-Msg-Id"] == env["id"]
    return env


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


async def publish_envelope(
    nats_url: str, subject_root: str, stream: str, env: Envelope, *, msg_id: str | None = None
) -> Envelope:
    """Put ``env`` on ``stream`` as the producing service's relay would.

    The message id is fresh unless given (the relay gives the event id), so a
    re-published envelope is a redelivery, not a copy the stream's duplicate
    window drops.
    """
    nc = await nats.connect(nats_url)
    try:
        # Generous, as above: a loaded machine can take seconds to ack.
        await nc.jetstream(timeout=30).publish(
            subject_for(subject_root, env.type),
            env.model_dump_json(by_alias=True).encode(),
            headers={"Nats-Msg-Id": msg_id or uuid.uuid4().hex},
            stream=stream,
        )
    finally:
        await nc.close()
    return env
