"""Reading consumer info from the real JetStream (the local server, a private stream)."""

from __future__ import annotations

import socket
import uuid

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from studio_operator.decision import QueueLoad
from studio_operator.jetstream import JetStreamReader, QueueReadError

TIMEOUT = 10.0


@pytest.fixture
async def work_queue(nats_url):
    """A private stream and a durable pull consumer, deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    stream, consumer, subject = f"OPTEST_{suffix}", "workers", f"optest.{suffix}.jobs"
    nc = await nats.connect(nats_url)
    js = nc.jetstream(timeout=TIMEOUT)
    await js.add_stream(name=stream, subjects=[subject])
    await js.add_consumer(
        stream,
        ConsumerConfig(durable_name=consumer, ack_policy=AckPolicy.EXPLICIT, ack_wait=120),
    )
    try:
        yield js, stream, consumer, subject
    finally:
        await js.delete_stream(stream)
        await nc.close()


@pytest.fixture
async def reader():
    reader = JetStreamReader()
    try:
        yield reader
    finally:
        await reader.close()


async def test_pending_and_in_flight_follow_the_queue(nats_url, work_queue, reader):
    js, stream, consumer, subject = work_queue
    assert await reader.read(nats_url, stream, consumer) == QueueLoad(0, 0)

    for i in range(7):
        await js.publish(subject, f"job {i}".encode())
    assert await reader.read(nats_url, stream, consumer) == QueueLoad(7, 0)

    # A worker takes three jobs and is still running them (no ack yet).
    sub = await js.pull_subscribe_bind(consumer, stream)
    taken = await sub.fetch(3, timeout=TIMEOUT)
    assert len(taken) == 3
    assert await reader.read(nats_url, stream, consumer) == QueueLoad(4, 3)

    # One finishes; another is handed back for later (still in flight until redelivered).
    await taken[0].ack_sync(timeout=TIMEOUT)
    await taken[1].nak(delay=60)
    assert await reader.read(nats_url, stream, consumer) == QueueLoad(4, 2)
    await sub.unsubscribe()


async def test_a_missing_consumer_or_stream_reads_as_none(nats_url, work_queue, reader):
    _, stream, _, _ = work_queue
    assert await reader.read(nats_url, stream, "nobody") is None
    assert await reader.read(nats_url, f"NO_SUCH_{uuid.uuid4().hex[:8]}", "x") is None


async def test_the_connection_is_reused(nats_url, work_queue, reader):
    _, stream, consumer, _ = work_queue
    await reader.read(nats_url, stream, consumer)
    first = reader._connections[nats_url]
    await reader.read(nats_url, stream, consumer)
    assert reader._connections[nats_url] is first
    await reader.close()
    assert reader._connections == {}


async def test_an_unreachable_server_is_a_read_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reader = JetStreamReader(connect_timeout=1.0)
    with pytest.raises(QueueReadError, match="cannot connect"):
        await reader.read(f"nats://127.0.0.1:{port}", "STUDIO", "workers")
    await reader.close()
