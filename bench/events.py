"""Events: outbox commit → consumer handled, through the real relay and consumer.

    uv run python bench/events.py [--rate 100] [--seconds 10]

One process, as a service runs them: ``create_service_app``'s lifespan builds
the outbox relay (LISTEN/NOTIFY, poll fallback) and an inbox-idempotent
JetStream consumer for one event type, on a throwaway database and a private
stream. Events are committed one transaction each at ``--rate`` per second
for ``--seconds`` (plus a burst of ``--burst`` at once at the end, reported
apart); each latency is from the producer's commit returning to the handler
running inside the consumer's inbox transaction (same process, monotonic clock).

Target (issue 8): p99 < 50 ms at the steady rate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import add_server_options, drop_scratch, emit, machine, percentile, verdict

from studio_common.app import create_service_app, running
from studio_common.consumer import EventConsumers
from studio_common.db import Database, service_metadata
from studio_common.events import Envelope, EventPayload
from studio_common.outbox import enqueue, messaging_tables
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
    admin_url = args.database_admin_url
    token = uuid.uuid4().hex[:8]
    db_name = f"bench_events_{token}"
    stream = f"BENCHEV{token.upper()}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{db_name}"')
    await conn.close()
    db_url = f"{admin_url.rsplit('/', 1)[0]}/{db_name}".replace(
        "postgresql://", "postgresql+asyncpg://", 1
    )
    committed: dict[uuid.UUID, float] = {}
    handled: dict[uuid.UUID, float] = {}
    report: dict[str, Any] = {"machine": machine(), "rate": args.rate, "seconds": args.seconds}
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
        )
        app = create_service_app(
            settings, title="bench events", tables=tables, register_consumers=register
        )
        for name in ("faststream", f"studio.{settings.service_name}.broker"):
            logging.getLogger(name).setLevel(logging.WARNING)
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
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
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


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rate", type=float, default=100.0, help="events per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--burst", type=int, default=200)
    add_server_options(p)
    return p.parse_args()


if __name__ == "__main__":
    result = asyncio.run(run(parse_args()))
    for phase in ("steady", "burst"):
        print(f"{phase}: {result[phase]}")
    emit(result)
