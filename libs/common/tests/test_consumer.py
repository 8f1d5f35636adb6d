from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.consumer import EventConsumers, envelope_bytes, exponential_backoff
from studio_common.db import Database
from studio_common.events import Envelope, EventPayload, dead_letter_subject, subject_for
from studio_common.observability import MessagingMetrics
from studio_common.testing.plugin import EventNamespace

EVENT_TYPE = "commontest.gadget.shipped"
MAX_DELIVER = 3


class GadgetShipped(EventPayload):
    event_type: ClassVar[str] = EVENT_TYPE
    gadget_id: uuid.UUID
    label: str


async def wait_for(predicate: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await predicate()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@dataclass
class Harness:
    db: Database
    js: JetStreamContext
    ns: EventNamespace
    consumers: EventConsumers
    applied: Table
    schema: Any
    read_stream: Callable[[str], Awaitable[list[Any]]]
    calls: list[uuid.UUID] = field(default_factory=list)

    @property
    def durable(self) -> str:
        return self.consumers.durable_name(EVENT_TYPE)

    @property
    def dlq_subject(self) -> str:
        return dead_letter_subject(self.ns.subject_root, self.durable, EVENT_TYPE)

    async def publish(self, data: bytes, msg_id: str | None = None) -> None:
        await self.js.publish(
            subject_for(self.ns.subject_root, EVENT_TYPE),
            data,
            headers={"Nats-Msg-Id": msg_id or uuid.uuid4().hex},
            stream=self.ns.stream,
        )

    async def applied_labels(self) -> list[str]:
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(select(self.applied.c.label))).scalars())

    async def inbox_count(self) -> int:
        inbox = self.schema.tables.inbox
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(inbox))).scalar_one())

    async def dead_letters(self) -> list[Any]:
        msgs = await self.read_stream(self.ns.stream)
        return [m for m in msgs if m.subject == self.dlq_subject]

    async def settled(self) -> bool:
        """Nothing pending or unacknowledged on the consumer."""
        info = await self.js.consumer_info(self.ns.stream, self.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0


def gadget(label: str) -> Envelope:
    return Envelope.wrap(GadgetShipped(gadget_id=uuid.uuid4(), label=label))


@pytest.fixture
async def make_harness(
    db: Database,
    schema: Any,
    js: JetStreamContext,
    stream: EventNamespace,
    nats_url: str,
    read_stream: Any,
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    applied = Table(
        "applied",
        schema.metadata,
        Column("id", Integer, primary_key=True),
        Column("label", String(50), nullable=False),
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(applied.create)
    started: list[tuple[NatsClient, EventConsumers]] = []

    async def make(
        behaviour: Callable[[GadgetShipped, int], None] = lambda e, n: None,
        metrics: MessagingMetrics | None = None,
    ) -> Harness:
        nc = await nats.connect(nats_url)
        consumers = EventConsumers(
            nc,
            db,
            schema.tables,
            service=f"ct{uuid.uuid4().hex[:6]}",
            stream=stream.stream,
            subject_root=stream.subject_root,
            max_deliver=MAX_DELIVER,
            retry_backoff=lambda n: 0.05,
            metrics=metrics,
        )
        h = Harness(db, js, stream, consumers, applied, schema, read_stream)

        @consumers.on(GadgetShipped)
        async def handle(event: GadgetShipped, envelope: Envelope, session: AsyncSession) -> None:
            h.calls.append(envelope.id)
            # Written before the failure: must be rolled back with the attempt.
            await session.execute(insert(applied).values(label=event.label))
            behaviour(event, h.calls.count(envelope.id))

        await consumers.start()
        started.append((nc, consumers))
        return h

    yield make
    for nc, consumers in started:
        await consumers.stop()
        await nc.close()


async def test_same_event_twice_is_applied_once(make_harness) -> None:
    h = await make_harness()
    env = gadget("once")
    # Two publishes the stream cannot deduplicate (different Nats-Msg-Id).
    await h.publish(envelope_bytes(env), msg_id="first")
    await h.publish(envelope_bytes(env), msg_id="second")

    await wait_for(lambda: h.settled())
    info = await h.js.consumer_info(h.ns.stream, h.durable)
    assert info.delivered.consumer_seq == 2
    assert h.calls == [env.id]
    assert await h.applied_labels() == ["once"]
    assert await h.inbox_count() == 1
    assert await h.dead_letters() == []


async def test_distinct_events_are_each_applied(make_harness) -> None:
    h = await make_harness()
    envs = [gadget(f"g{i}") for i in range(5)]
    for env in envs:
        await h.publish(envelope_bytes(env))
    await wait_for(lambda: h.settled())
    assert sorted(await h.applied_labels()) == [f"g{i}" for i in range(5)]
    assert sorted(h.calls) == sorted(e.id for e in envs)


async def test_failing_handler_is_retried_then_succeeds(make_harness) -> None:
    def flaky(event: GadgetShipped, attempt: int) -> None:
        if attempt < MAX_DELIVER:
            raise RuntimeError(f"transient failure {attempt}")

    h = await make_harness(flaky)
    env = gadget("eventually")
    await h.publish(envelope_bytes(env))

    await wait_for(lambda: h.settled())
    assert h.calls == [env.id] * MAX_DELIVER
    # The failed attempts' writes were rolled back; the successful one committed.
    assert await h.applied_labels() == ["eventually"]
    assert await h.inbox_count() == 1
    assert await h.dead_letters() == []


async def test_always_failing_handler_ends_in_dead_letter(make_harness) -> None:
    def broken(event: GadgetShipped, attempt: int) -> None:
        raise ValueError("cannot ship to the moon")

    h = await make_harness(broken)
    env = gadget("doomed")
    await h.publish(envelope_bytes(env))

    [dead] = await wait_for(lambda: h.dead_letters())
    await wait_for(lambda: h.settled())
    assert h.calls == [env.id] * MAX_DELIVER
    assert dead.subject == f"{h.ns.subject_root}.dlq.{h.durable}.{EVENT_TYPE}"
    assert Envelope.model_validate_json(dead.data) == env
    assert "cannot ship to the moon" in dead.headers["Studio-Dead-Letter-Reason"]
    assert dead.headers["Studio-Original-Subject"] == subject_for(h.ns.subject_root, EVENT_TYPE)
    assert await h.applied_labels() == []
    assert await h.inbox_count() == 0
    # Nothing more is delivered once it is parked.
    await asyncio.sleep(0.5)
    assert len(h.calls) == MAX_DELIVER
    assert len(await h.dead_letters()) == 1


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("not-json", lambda: b"{definitely not json"),
        ("not-an-envelope", lambda: b'{"hello": "world"}'),
        (
            "wrong-type",
            lambda: envelope_bytes(
                Envelope(type="commontest.other.thing", version=1, data={"x": 1})
            ),
        ),
        (
            "bad-payload",
            lambda: envelope_bytes(Envelope(type=EVENT_TYPE, version=1, data={"gadgetId": "nope"})),
        ),
    ],
)
async def test_unreadable_message_goes_to_dead_letter_at_once(
    make_harness, kind: str, data: Callable[[], bytes]
) -> None:
    h = await make_harness()
    raw = data()
    await h.publish(raw)

    [dead] = await wait_for(lambda: h.dead_letters())
    await wait_for(lambda: h.settled())
    assert dead.data == raw
    assert dead.headers["Studio-Dead-Letter-Reason"].startswith("unreadable")
    assert h.calls == []
    info = await h.js.consumer_info(h.ns.stream, h.durable)
    # Delivered once, parked at once: no retries.
    assert info.delivered.consumer_seq == 1
    assert info.num_redelivered == 0


async def test_a_version_the_consumer_does_not_handle_is_acked_and_counted(
    make_harness,
) -> None:
    """ADR 1: during a breaking change producers emit both versions; the consumer
    of V1 skips V2 (and the reverse) instead of parking it as unreadable."""
    registry = CollectorRegistry()
    h = await make_harness(metrics=MessagingMetrics(registry, "ctversions"))
    newer = Envelope(type=EVENT_TYPE, version=9, data={"anything": "goes"})
    await h.publish(envelope_bytes(newer))
    current = gadget("v1")
    await h.publish(envelope_bytes(current))

    await wait_for(lambda: h.settled())
    assert h.calls == [current.id]
    assert await h.dead_letters() == []
    info = await h.js.consumer_info(h.ns.stream, h.durable)
    assert info.num_redelivered == 0
    skipped = registry.get_sample_value(
        "consumer_skipped_versions_total",
        {"service": "ctversions", "consumer": h.durable, "version": "9"},
    )
    assert skipped == 1.0


def test_each_version_of_an_event_has_a_durable_of_its_own() -> None:
    consumers = EventConsumers(
        NatsClient(), None, None, service="svc", stream="X", subject_root="x"
    )  # type: ignore[arg-type]
    assert consumers.durable_name("a.b.c") == "svc-a-b-c"
    assert consumers.durable_name("a.b.c", 2) == "svc-a-b-c-v2"


async def test_apply_is_idempotent_per_consumer(db, schema) -> None:
    """The inbox is keyed by (consumer, event id): another consumer applies it too."""
    consumers = EventConsumers(
        NatsClient(),  # never connected
        db,
        schema.tables,
        service="ctapply",
        stream="X",
        subject_root="x",
    )
    env = gadget("apply")
    payload = GadgetShipped.model_validate(env.data)
    seen: list[str] = []

    async def handler(event: GadgetShipped, envelope: Envelope, session: AsyncSession) -> None:
        seen.append(event.label)

    assert await consumers.apply(env, payload, handler, "one") is True
    assert await consumers.apply(env, payload, handler, "one") is False
    assert await consumers.apply(env, payload, handler, "two") is True
    assert seen == ["apply", "apply"]


def test_default_backoff_grows_and_caps() -> None:
    assert [exponential_backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert exponential_backoff(20) == 30.0


async def test_dead_letter_is_not_duplicated_by_a_redelivery(make_harness) -> None:
    h = await make_harness()
    original = h.consumers._dead_letter

    async def twice(*args: Any) -> None:
        # As if the process died after parking the message and before acking it.
        await original(*args)
        await original(*args)

    h.consumers._dead_letter = twice  # type: ignore[method-assign]
    await h.publish(b"garbage")
    await wait_for(lambda: h.dead_letters())
    await wait_for(lambda: h.settled())
    assert len(await h.dead_letters()) == 1


async def test_a_failing_fetch_pauses_instead_of_spinning(
    make_harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed connection fails every fetch at once; retried without a pause the
    loop would take a whole core and starve the process."""
    import nats.errors
    from nats.js.client import JetStreamContext as Js

    calls = 0

    async def closed(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise nats.errors.ConnectionClosedError

    monkeypatch.setattr(Js.PullSubscription, "fetch", closed)
    await make_harness()
    await asyncio.sleep(1.5)
    assert 1 <= calls <= 3


async def test_an_idle_fetch_ending_in_a_bare_timeout_keeps_the_loop_alive(
    make_harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """nats-py raises a bare TimeoutError when its deadline passes between its
    two internal requests; the loop takes it for an idle fetch."""
    from nats.js.client import JetStreamContext as Js

    fetch = Js.PullSubscription.fetch
    bare = 0

    async def sometimes_bare(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        nonlocal bare
        if bare < 2:
            bare += 1
            raise TimeoutError
        return await fetch(self, *args, **kwargs)

    monkeypatch.setattr(Js.PullSubscription, "fetch", sometimes_bare)
    h = await make_harness()
    env = gadget("after-timeouts")
    await h.publish(envelope_bytes(env))
    await wait_for(lambda: h.settled())
    assert bare == 2
    assert h.calls == [env.id]
    # Idle, not a failure: no warning, no pause.
    assert "fetching from JetStream failed" not in caplog.text
