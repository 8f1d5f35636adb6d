from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any, ClassVar

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import APIError
from sqlalchemy import select

from studio_common.db import Database
from studio_common.events import Envelope, EventPayload
from studio_common.outbox import (
    DUPLICATE_WINDOW_SECONDS,
    OutboxRelay,
    enqueue,
    ensure_stream,
)
from studio_common.testing.plugin import EventNamespace

EVENT_TYPE = "commontest.widget.made"


class WidgetMade(EventPayload):
    # Not put in the global catalog: the services' catalog tests must not see it.
    event_type: ClassVar[str] = EVENT_TYPE
    widget_id: uuid.UUID
    n: int


class Crash(BaseException):
    """The process dying: not an Exception, so nothing on the way catches it."""


def relay_for(db: Database, schema: Any, js: JetStreamContext, ns: EventNamespace, **kw: Any):
    return OutboxRelay(db, schema.tables, js, subject_root=ns.subject_root, stream=ns.stream, **kw)


async def enqueue_widgets(db: Database, schema: Any, *ns: int, **kw: Any) -> list[Envelope]:
    async with db.transaction() as session:
        return [
            await enqueue(session, schema.tables, WidgetMade(widget_id=uuid.uuid4(), n=n), **kw)
            for n in ns
        ]


async def outbox_rows(db: Database, schema: Any) -> list[Any]:
    outbox = schema.tables.outbox
    async with db.engine.connect() as conn:
        return list(
            (await conn.execute(select(outbox).order_by(outbox.c.created_at, outbox.c.id))).all()
        )


async def test_committed_event_is_published_once(db, schema, js, stream, read_stream) -> None:
    relay = relay_for(db, schema, js, stream)
    [env] = await enqueue_widgets(db, schema, 1, headers={"Studio-Tenant": "t1"})

    assert await relay.publish_pending() == 1
    assert await relay.publish_pending() == 0

    [msg] = await read_stream(stream.stream)
    assert msg.subject == f"{stream.subject_root}.{EVENT_TYPE}"
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == str(env.id)
    assert msg.headers["Studio-Event-Type"] == EVENT_TYPE
    assert msg.headers["Studio-Event-Version"] == "1"
    assert msg.headers["Studio-Tenant"] == "t1"  # custom headers travel along
    received = Envelope.model_validate_json(msg.data)
    assert received == env
    assert WidgetMade.model_validate(received.data) == WidgetMade.model_validate(env.data)
    # camelCase on the wire
    assert set(json.loads(msg.data)) == {"id", "type", "version", "occurredAt", "data"}
    assert "widgetId" in json.loads(msg.data)["data"]

    [row] = await outbox_rows(db, schema)
    assert row.published_at is not None
    assert row.attempts == 1
    assert row.last_error is None


async def test_rolled_back_event_is_never_published(db, schema, js, stream, read_stream) -> None:
    relay = relay_for(db, schema, js, stream)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await enqueue(session, schema.tables, WidgetMade(widget_id=uuid.uuid4(), n=1))
            raise RuntimeError("the change failed")

    assert await outbox_rows(db, schema) == []
    assert await relay.publish_pending() == 0
    assert await read_stream(stream.stream) == []


async def test_relay_dying_between_publish_and_mark_publishes_once(
    db, schema, js, stream, read_stream
) -> None:
    published: list[uuid.UUID] = []

    class DyingRelay(OutboxRelay):
        async def _publish(self, event_id: uuid.UUID, *args: Any) -> None:
            await super()._publish(event_id, *args)
            published.append(event_id)
            if len(published) == 3:
                raise Crash

    envs = await enqueue_widgets(db, schema, 1, 2, 3)
    with pytest.raises(Crash):
        await DyingRelay(
            db, schema.tables, js, subject_root=stream.subject_root, stream=stream.stream
        ).publish_pending()
    assert published == [e.id for e in envs]
    # The marking transaction rolled back with the crash: every row is still pending.
    assert all(r.published_at is None for r in await outbox_rows(db, schema))
    assert len(await read_stream(stream.stream)) == 3

    # A fresh relay republishes all three; the stream's duplicate window drops them.
    assert await relay_for(db, schema, js, stream).publish_pending() == 3
    msgs = await read_stream(stream.stream)
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [str(e.id) for e in envs]
    assert all(r.published_at is not None for r in await outbox_rows(db, schema))


async def test_lost_ack_is_retried_and_deduplicated(db, schema, js, stream, read_stream) -> None:
    """The publish landed but the relay saw an error: the retry must not duplicate it."""
    calls = 0

    class LostAckRelay(OutboxRelay):
        async def _publish(self, *args: Any) -> None:
            nonlocal calls
            calls += 1
            await super()._publish(*args)
            if calls == 1:
                raise TimeoutError("ack lost")

    relay = LostAckRelay(
        db, schema.tables, js, subject_root=stream.subject_root, stream=stream.stream
    )
    [env] = await enqueue_widgets(db, schema, 1)
    assert await relay.publish_pending() == 0
    [row] = await outbox_rows(db, schema)
    assert row.published_at is None
    assert row.attempts == 1
    assert "ack lost" in row.last_error

    assert await relay.publish_pending() == 1
    [msg] = await read_stream(stream.stream)
    assert msg.headers["Nats-Msg-Id"] == str(env.id)


async def test_order_is_preserved(db, schema, js, stream, read_stream) -> None:
    relay = relay_for(db, schema, js, stream, batch_size=4)
    # Several events of one transaction, then several transactions.
    await enqueue_widgets(db, schema, *range(10))
    for n in range(10, 15):
        await enqueue_widgets(db, schema, n)

    total = 0
    while n := await relay.publish_pending():
        total += n
    assert total == 15
    msgs = await read_stream(stream.stream)
    assert [Envelope.model_validate_json(m.data).data["n"] for m in msgs] == list(range(15))


async def test_failed_publish_stops_the_batch_to_keep_order(db, schema, js, read_stream) -> None:
    # No stream listens on this root: every publish fails.
    nowhere = EventNamespace(subject_root=f"nowhere{uuid.uuid4().hex[:8]}", stream="NOSUCH")
    relay = relay_for(db, schema, js, nowhere)
    await enqueue_widgets(db, schema, 1, 2, 3)
    assert await relay.publish_pending() == 0
    rows = await outbox_rows(db, schema)
    assert [r.attempts for r in rows] == [1, 0, 0]
    assert rows[0].last_error
    assert all(r.published_at is None for r in rows)


async def test_concurrent_relays_share_the_work(db, schema, js, stream, read_stream) -> None:
    await enqueue_widgets(db, schema, *range(30))
    relays = [relay_for(db, schema, js, stream, batch_size=30) for _ in range(3)]
    counts = await asyncio.gather(*(r.publish_pending() for r in relays))
    while n := await relays[0].publish_pending():
        counts.append(n)
    assert sum(counts) == 30
    assert len(await read_stream(stream.stream)) == 30


async def test_running_relay_wakes_on_notify(db, schema, js, stream, read_stream) -> None:
    # A long poll interval: only the NOTIFY of the commit can make this fast.
    relay = relay_for(db, schema, js, stream, poll_interval=30)
    relay.start()
    try:
        await asyncio.sleep(0.3)  # let it LISTEN
        assert relay._listener is not None
        started = time.monotonic()
        [env] = await enqueue_widgets(db, schema, 1)
        while not await read_stream(stream.stream):
            assert time.monotonic() - started < 5, "relay did not wake up"
            await asyncio.sleep(0.05)
        [msg] = await read_stream(stream.stream)
        assert msg.headers["Nats-Msg-Id"] == str(env.id)
    finally:
        await relay.stop()
    assert relay._task is None
    assert relay._listener is None


async def test_ensure_stream_is_idempotent(js: JetStreamContext, event_namespace) -> None:
    token = uuid.uuid4().hex[:8]
    name, root = (
        f"{event_namespace.stream}_E{token.upper()}",
        f"{event_namespace.subject_root}e{token}",
    )
    try:
        await ensure_stream(js, name, root)
        await js.publish(f"{root}.a.b.c", b"1", headers={"Nats-Msg-Id": "x"})
        first = await js.stream_info(name)
        await ensure_stream(js, name, root)
        again = await js.stream_info(name)
        assert again.config.subjects == [f"{root}.>"]
        assert again.config.duplicate_window == DUPLICATE_WINDOW_SECONDS
        assert again.state.messages == first.state.messages == 1
        assert again.created == first.created
        # Dedup still works after the second call.
        ack = await js.publish(f"{root}.a.b.c", b"1", headers={"Nats-Msg-Id": "x"})
        assert ack.duplicate
    finally:
        await js.delete_stream(name)


async def test_ensure_stream_repairs_a_drifted_config(
    js: JetStreamContext, event_namespace
) -> None:
    token = uuid.uuid4().hex[:8]
    name, root = (
        f"{event_namespace.stream}_D{token.upper()}",
        f"{event_namespace.subject_root}d{token}",
    )
    await js.add_stream(StreamConfig(name=name, subjects=[f"{root}.>"], duplicate_window=5))
    try:
        await ensure_stream(js, name, root)
        info = await js.stream_info(name)
        assert info.config.duplicate_window == DUPLICATE_WINDOW_SECONDS
    finally:
        await js.delete_stream(name)


async def test_relay_listens_again_after_losing_its_connection(
    db, schema, js, stream, read_stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("studio_common.outbox.RELISTEN_SECONDS", 0.0)
    relay = relay_for(db, schema, js, stream, poll_interval=0.1)
    relay.start()
    try:
        deadline = time.monotonic() + 5
        while relay._listener is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        first = relay._listener
        await first.close()  # as when the database restarts
        while relay._listener is first or relay._listener is None:
            assert time.monotonic() < deadline, "relay did not LISTEN again"
            await asyncio.sleep(0.02)
        assert not relay._listener.is_closed()
        # The fresh LISTEN wakes the relay: slow polling from here on proves it.
        relay.poll_interval = 30
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await enqueue_widgets(db, schema, 1)
        while not await read_stream(stream.stream):
            assert time.monotonic() - started < 5, "relay did not wake up"
            await asyncio.sleep(0.05)
    finally:
        await relay.stop()


async def test_the_relay_measures_its_lag_and_counts_what_it_published(
    db, schema, js, stream
) -> None:
    from prometheus_client import CollectorRegistry

    from studio_common.observability import MessagingMetrics

    registry = CollectorRegistry()
    metrics = MessagingMetrics(registry, "commontest")
    relay = relay_for(db, schema, js, stream, metrics=metrics)
    assert await relay.lag_seconds() == 0.0
    await enqueue_widgets(db, schema, 1, 2)
    await asyncio.sleep(0.2)
    lag = await relay.lag_seconds()
    assert 0.15 < lag < 30
    assert await relay.publish_pending() == 2
    assert await relay.lag_seconds() == 0.0
    published = registry.get_sample_value(
        "outbox_events_published_total", {"service": "commontest", "event_type": EVENT_TYPE}
    )
    assert published == 2.0


async def test_ensure_stream_replicas_are_explicit_or_kept(
    js: JetStreamContext, event_namespace
) -> None:
    """STUDIO_NATS_STREAM_REPLICAS is applied by the services; a caller without it
    (the transcoder worker) keeps what the stream has."""
    token = uuid.uuid4().hex[:8]
    name, root = (
        f"{event_namespace.stream}_R{token.upper()}",
        f"{event_namespace.subject_root}r{token}",
    )
    try:
        await ensure_stream(js, name, root, 1)
        assert (await js.stream_info(name)).config.num_replicas == 1
        await ensure_stream(js, name, root)
        assert (await js.stream_info(name)).config.num_replicas == 1
        # A server that refuses copies it cannot make keeps 1.
        with contextlib.suppress(APIError):
            await ensure_stream(js, name, root, 2)
        asked = (await js.stream_info(name)).config.num_replicas
        await ensure_stream(js, name, root)
        assert (await js.stream_info(name)).config.num_replicas == asked
    finally:
        await js.delete_stream(name)
