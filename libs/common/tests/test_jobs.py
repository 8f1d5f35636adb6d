from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_settings import SettingsConfigDict

from studio_common.consumer import envelope_bytes
from studio_common.events import Envelope, EventPayload, event, subject_for
from studio_common.jobs import SHARED_FETCH_SECONDS, JobConsumer, JobMessage
from studio_common.runtime import Runtime, ServiceRuntime
from studio_common.settings import ServiceSettings
from studio_common.testing.plugin import EventNamespace

# Long enough that a message stuck behind another loop's fetch cannot pass for a quick one.
FETCH_TIMEOUT = 10.0
HANDLED_WITHIN = 3.0


class JobTestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMMONTEST_")


@event("commontest.job.asked")
class JobAsked(EventPayload):
    n: int


@event("commontest.part.asked")
class PartAsked(EventPayload):
    n: int


@pytest.fixture
async def runtime(
    service_settings: dict[str, Any], stream: EventNamespace
) -> AsyncIterator[Runtime[None]]:
    settings = JobTestSettings(
        **{
            **service_settings,
            "event_subject_root": stream.subject_root,
            "event_stream": stream.stream,
        }
    )
    service: ServiceRuntime[None] = ServiceRuntime(
        settings,
        name=f"jobtest-{uuid.uuid4().hex[:6]}",
        produces_events=False,
        verify_tokens=False,
    )
    async with service.run() as rt:
        yield rt


async def test_loops_sharing_one_slot_take_turns(runtime: Runtime[None]) -> None:
    """One slot, two event types: a message for either loop is taken at once,
    not after the other loop's fetch runs out."""
    handled: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def handle(message: JobMessage) -> None:
        await message.ack()
        handled.put_nowait((message.payload.n, time.monotonic()))  # type: ignore[attr-defined]

    consumer = JobConsumer(
        runtime,
        handle,
        events=(JobAsked, PartAsked),
        concurrency=1,
        fetch_timeout=FETCH_TIMEOUT,
    )
    await consumer.start()
    s = runtime.settings
    try:
        # Without turns the loops hold the slot strictly one after the other, a
        # whole fetch each, so types that merely alternate would always find
        # their loop fetching: a type's second message in a row is the one
        # that would wait out the other loop's fetch.
        kinds: list[type[JobAsked] | type[PartAsked]] = [
            JobAsked,
            JobAsked,
            PartAsked,
            PartAsked,
            JobAsked,
            PartAsked,
        ]
        for n, kind in enumerate(kinds):
            envelope = Envelope.wrap(kind(n=n))
            published = time.monotonic()
            await runtime.js.publish(
                subject_for(s.event_subject_root, kind.event_type),
                envelope_bytes(envelope),
                headers={"Nats-Msg-Id": str(envelope.id)},
                stream=s.event_stream,
            )
            try:
                got, at = await asyncio.wait_for(handled.get(), HANDLED_WITHIN)
            except TimeoutError:
                pytest.fail(f"message {n} ({kind.event_type}) not handled in {HANDLED_WITHIN} s")
            assert got == n
            assert at - published < HANDLED_WITHIN
    finally:
        await consumer.stop(grace=1.0)


@pytest.mark.parametrize(
    ("concurrency", "expected"),
    [(1, SHARED_FETCH_SECONDS), (2, FETCH_TIMEOUT), (3, FETCH_TIMEOUT)],
)
async def test_fetch_waits_the_whole_timeout_when_every_loop_has_a_slot(
    runtime: Runtime[None], concurrency: int, expected: float
) -> None:
    async def handle(message: JobMessage) -> None:
        await message.ack()

    consumer = JobConsumer(
        runtime,
        handle,
        events=(JobAsked, PartAsked),
        concurrency=concurrency,
        fetch_timeout=FETCH_TIMEOUT,
    )
    assert consumer._loop_fetch_timeout() == expected
