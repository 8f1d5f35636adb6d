"""Events: outbox commit → consumer handled, and the two NATS clients side by side.

    uv run python bench/events.py [--rate 100] [--seconds 10] [--client-rounds 2]
        [--skip-clients | --only-clients]

One process, as a service runs them: ``create_service_app``'s lifespan builds
the outbox relay (LISTEN/NOTIFY, poll fallback) and an inbox-idempotent
JetStream consumer for one event type, on a throwaway database and a private
stream. Events are committed one transaction each at ``--rate`` per second
for ``--seconds`` (plus a burst of ``--burst`` at once at the end, reported
apart); each latency is from the producer's commit returning to the handler
running inside the consumer's inbox transaction (same process, monotonic clock).

Target (issue 8): p99 < 50 ms at the steady rate.

Then the NATS client libraries alone (ADR 10), in the same run: JetStream
publish → handler through FastStream (``NatsBroker.publish`` and a pull
subscriber configured as ``EventConsumers`` configured it before ADR 10) and
through bare nats-py (``js.publish`` and a ``pull_subscribe`` fetch loop that,
like FastStream's and ``EventConsumers``' own, fetches ``PULL_BATCH`` and
handles a batch concurrently). Same
stream settings (``ensure_stream``), same consumer settings
(``consumer_config``), the same handler (read the id, ack), no database.
Per library and round: latency at ``--client-rate`` for ``--client-seconds``
(publish call → handler), then throughput of ``--client-messages`` published
by 32 concurrent publishers while the subscriber consumes them (first publish
→ last handled), with the process's CPU per message. Rounds alternate the
order; the medians and the FastStream ÷ nats-py ratios are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import nats
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import (
    add_server_options,
    create_scratch,
    drop_scratch,
    emit,
    machine,
    percentile,
    verdict,
)

from studio_common.app import create_service_app, running
from studio_common.consumer import PULL_BATCH, PULL_TIMEOUT_SECONDS, EventConsumers, consumer_config
from studio_common.db import Database, service_metadata
from studio_common.events import Envelope, EventPayload
from studio_common.outbox import enqueue, ensure_stream, messaging_tables
from studio_common.settings import ServiceSettings

SCHEMA = "benchevents"
metadata = service_metadata(SCHEMA)
tables = messaging_tables(metadata)


class BenchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BENCHEVENTS_")


class BenchPinged(EventPayload):
    event_type: ClassVar[str] = "benchevents.ping.sent"
    seq: int


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine()}
    if not args.only_clients:
        report |= await run_outbox(args)
    if not args.skip_clients:
        report["clients"] = await compare_clients(args)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


async def run_outbox(args: argparse.Namespace) -> dict[str, Any]:
    admin_url = args.database_admin_url
    token = uuid.uuid4().hex[:8]
    db_name = f"bench_events_{token}"
    stream = f"BENCHEV{token.upper()}"
    db_url = (await create_scratch(admin_url, db_name)).replace(
        "postgresql://", "postgresql+asyncpg://", 1
    )
    committed: dict[uuid.UUID, float] = {}
    handled: dict[uuid.UUID, float] = {}
    report: dict[str, Any] = {"rate": args.rate, "seconds": args.seconds}
    try:
        setup = Database.connect(db_url, pool_size=1)
        async with setup.engine.begin() as c:
            await c.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
            await c.run_sync(metadata.create_all)
        await setup.dispose()

        def register(consumers: EventConsumers) -> None:
            async def on_ping(
                event: BenchPinged, envelope: Envelope, session: AsyncSession
            ) -> None:
                handled[envelope.id] = time.perf_counter()

            consumers.add(BenchPinged, on_ping)

        settings = BenchSettings(
            database_url=db_url,
            nats_url=args.nats_url,
            event_subject_root=f"benchev{token}",
            event_stream=stream,
            log_level="WARNING",
            environment="test",
            # Outside development a service refuses to start without one.
            jwt_audience="studio-bench",
        )
        app = create_service_app(
            settings, title="bench events", tables=tables, register_consumers=register
        )
        async with running(app):
            database: Database = app.state.runtime.database
            await asyncio.sleep(1.0)  # consumer created, relay listening

            async def produce(seq: int) -> None:
                async with database.transaction() as session:
                    envelope = await enqueue(session, tables, BenchPinged(seq=seq))
                committed[envelope.id] = time.perf_counter()

            async def drain(ids: set[uuid.UUID], within: float = 30.0) -> None:
                deadline = time.monotonic() + within
                while not ids <= handled.keys() and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)

            # Warm-up: connections, prepared statements, the consumer's first fetch.
            await asyncio.gather(*(produce(-i) for i in range(1, 21)))
            await drain(set(committed))
            committed.clear()
            handled.clear()

            interval = 1.0 / args.rate
            start = time.perf_counter()
            tasks = []
            for i in range(int(args.rate * args.seconds)):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(produce(i)))
            await asyncio.gather(*tasks)
            await drain(set(committed))
            steady = summarize(committed, handled)
            committed.clear()
            handled.clear()

            await asyncio.gather(*(produce(100_000 + i) for i in range(args.burst)))
            await drain(set(committed))
            burst = summarize(committed, handled)
        report["steady"] = steady
        report["burst"] = burst | {"events": args.burst}
        report["ratio_p99_to_limit"] = round(steady["p99_ms"] / 50.0, 2)
        report["verdict"] = verdict(steady["p99_ms"], 50.0, higher_is_better=False)
    finally:
        await drop_scratch(admin_url, args.nats_url, database=db_name, stream=stream)
    return report


def summarize(committed: dict[uuid.UUID, float], handled: dict[uuid.UUID, float]) -> dict[str, Any]:
    lat = sorted(handled[i] - t for i, t in committed.items() if i in handled)
    return {
        "events": len(committed),
        "handled": len(lat),
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p90_ms": round(percentile(lat, 90) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
    }


# --- the two NATS clients ------------------------------------------------------

Handled = Callable[[str], None]
PUBLISHERS = 32


class Client:
    """One library's publish and pull-consume path, on a connection of its own."""

    name: str

    async def start(self, stream: str, subject: str, durable: str, on_id: Handled) -> None:
        raise NotImplementedError

    async def publish(self, stream: str, subject: str, msg_id: str, data: bytes) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class FastStreamClient(Client):
    """What a service runs: a NatsBroker and a pull subscriber with manual acks."""

    name = "faststream"

    async def start(self, stream: str, subject: str, durable: str, on_id: Handled) -> None:
        quiet = logging.getLogger("bench.faststream")
        quiet.setLevel(logging.WARNING)
        self.broker = NatsBroker(self.url, logger=quiet, log_level=logging.DEBUG)

        async def on_message(msg: NatsMessage) -> None:
            on_id(msg.raw_message.headers["Nats-Msg-Id"])  # type: ignore[index]
            await msg.ack()

        self.broker.subscriber(
            subject,
            stream=JStream(stream, declare=False),
            durable=durable,
            config=consumer_config(durable, subject, ack_wait=30.0, max_deliver=5),
            pull_sub=PullSub(batch_size=PULL_BATCH, timeout=PULL_TIMEOUT_SECONDS),
            ack_policy=AckPolicy.MANUAL,
        )(on_message)
        await self.broker.start()

    async def publish(self, stream: str, subject: str, msg_id: str, data: bytes) -> None:
        await self.broker.publish(data, subject, headers={"Nats-Msg-Id": msg_id}, stream=stream)

    async def stop(self) -> None:
        await self.broker.stop()

    def __init__(self, url: str) -> None:
        self.url = url


class NatsPyClient(Client):
    """nats-py alone: ``js.publish`` and a fetch loop shaped like FastStream's."""

    name = "nats-py"

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop: asyncio.Task[None] | None = None

    async def start(self, stream: str, subject: str, durable: str, on_id: Handled) -> None:
        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream()
        await self.js.add_consumer(
            stream, config=consumer_config(durable, subject, ack_wait=30.0, max_deliver=5)
        )
        sub = await self.js.pull_subscribe_bind(durable, stream=stream)

        async def handle(msg: Msg) -> None:
            on_id(msg.headers["Nats-Msg-Id"])  # type: ignore[index]
            await msg.ack()

        async def loop() -> None:
            while True:
                try:
                    msgs = await sub.fetch(PULL_BATCH, timeout=PULL_TIMEOUT_SECONDS)
                except (NatsTimeout, TimeoutError):
                    continue
                await asyncio.gather(*(handle(m) for m in msgs))

        self.loop = asyncio.create_task(loop())

    async def publish(self, stream: str, subject: str, msg_id: str, data: bytes) -> None:
        await self.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id}, stream=stream)

    async def stop(self) -> None:
        if self.loop is not None:
            self.loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop
        await self.nc.drain()


def rates(sent: int, handled: dict[str, float], cpu0: float, wall0: float) -> dict[str, Any]:
    """Messages per second from ``wall0`` to the last one handled, and the
    process's CPU per message since ``cpu0``."""
    cpu = time.process_time() - cpu0
    wall = max(handled.values(), default=wall0) - wall0
    return {
        "messages": sent,
        "handled": len(handled),
        "seconds": round(wall, 3),
        "per_second": round(len(handled) / wall, 1) if wall > 0 else None,
        "cpu_us_per_message": round(cpu / max(1, len(handled)) * 1e6, 1),
    }


async def measure_client(
    client: Client,
    args: argparse.Namespace,
    prefill_js: JetStreamContext,
    stream: str,
    root: str,
    tag: str,
) -> dict[str, Any]:
    subject = f"{root}.{tag}.ping"
    sent: dict[str, float] = {}
    handled: dict[str, float] = {}
    body = b'{"id":"","type":"benchevents.ping.sent","version":1,"data":{"seq":0}}'

    def on_id(msg_id: str) -> None:
        handled[msg_id] = time.perf_counter()

    async def send(msg_id: str) -> None:
        sent[msg_id] = time.perf_counter()
        await client.publish(stream, subject, msg_id, body)

    async def drain(within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while len(handled) < len(sent) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.002)

    # Consuming alone: a backlog published beforehand (by the same bare
    # publisher for both libraries) drained by a subscriber that starts on it.
    backlog = iter(range(args.client_messages))

    async def prefill() -> None:
        for i in backlog:
            msg_id = f"{tag}-b{i}"
            sent[msg_id] = 0.0
            await prefill_js.publish(subject, body, headers={"Nats-Msg-Id": msg_id}, stream=stream)

    await asyncio.gather(*(prefill() for _ in range(PUBLISHERS)))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await client.start(stream, subject, f"bench-{tag}", on_id)
    try:
        await drain()
        consume = rates(len(sent), handled, cpu0, wall0)
        sent.clear()
        handled.clear()

        # Latency at a steady rate, one message at a time.
        interval = 1.0 / args.client_rate
        tasks = []
        start = time.perf_counter()
        for i in range(int(args.client_rate * args.client_seconds)):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(f"{tag}-l{i}")))
        await asyncio.gather(*tasks)
        await drain()
        lat = sorted(handled[k] - t for k, t in sent.items() if k in handled)
        latency = {
            "messages": len(sent),
            "handled": len(lat),
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
        }
        sent.clear()
        handled.clear()

        # Throughput: publishers and the subscriber at once, as fast as they go.
        queue = iter(range(args.client_messages))

        async def publisher() -> None:
            for i in queue:
                await send(f"{tag}-t{i}")

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(PUBLISHERS)))
        await drain()
        throughput = rates(len(sent), handled, cpu0, wall0)
    finally:
        await client.stop()
    return {"consume": consume, "latency": latency, "throughput": throughput}


async def compare_clients(args: argparse.Namespace) -> dict[str, Any]:
    token = uuid.uuid4().hex[:8]
    stream, root = f"BENCHCL{token.upper()}", f"benchcl{token}"
    nc = await nats.connect(args.nats_url)
    runs: dict[str, list[dict[str, Any]]] = {"faststream": [], "nats-py": []}
    try:
        await ensure_stream(nc.jetstream(), stream, root)
        for r in range(args.client_rounds):
            order = [FastStreamClient, NatsPyClient]
            if r % 2:
                order.reverse()
            for cls in order:
                client = cls(args.nats_url)
                result = await measure_client(
                    client, args, nc.jetstream(), stream, root, f"{client.name}{r}"
                )
                print(f"clients round {r + 1} {client.name}: {result}", flush=True)
                runs[client.name].append(result)
    finally:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream)
        await nc.close()

    def median(name: str, phase: str, key: str) -> float:
        return round(statistics.median(run[phase][key] for run in runs[name]), 2)

    summary: dict[str, Any] = {}
    for name in runs:
        summary[name] = {
            "consume_per_second": median(name, "consume", "per_second"),
            "consume_cpu_us_per_message": median(name, "consume", "cpu_us_per_message"),
            "latency_p50_ms": median(name, "latency", "p50_ms"),
            "latency_p99_ms": median(name, "latency", "p99_ms"),
            "publish_consume_per_second": median(name, "throughput", "per_second"),
            "publish_consume_cpu_us_per_message": median(name, "throughput", "cpu_us_per_message"),
        }
    fs, bare = summary["faststream"], summary["nats-py"]
    summary["faststream_to_nats_py"] = {
        key: round(fs[key] / bare[key], 2) if bare[key] else None for key in fs
    }
    return {
        "rate": args.client_rate,
        "seconds": args.client_seconds,
        "messages": args.client_messages,
        "rounds": runs,
        "summary": summary,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rate", type=float, default=100.0, help="events per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--burst", type=int, default=200)
    p.add_argument("--client-rate", type=float, default=200.0, help="messages/s, latency phase")
    p.add_argument("--client-seconds", type=float, default=5.0)
    p.add_argument("--client-messages", type=int, default=10_000, help="throughput phase")
    p.add_argument("--client-rounds", type=int, default=2)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--skip-clients", action="store_true", help="the outbox path alone")
    group.add_argument("--only-clients", action="store_true", help="the client comparison alone")
    add_server_options(p)
    return p.parse_args()


if __name__ == "__main__":
    result = asyncio.run(run(parse_args()))
    for phase in ("steady", "burst"):
        if phase in result:
            print(f"{phase}: {result[phase]}")
    if "clients" in result:
        for name, numbers in result["clients"]["summary"].items():
            print(f"clients {name}: {numbers}")
    emit(result)
