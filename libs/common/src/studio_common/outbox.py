"""Transactional outbox.

:func:`enqueue` writes the event row in the caller's transaction, so an event
exists iff the change that caused it committed. :class:`OutboxRelay` publishes
pending rows to JetStream with ``Nats-Msg-Id`` = event id: if it dies after
publishing but before marking the row, the republish is dropped by the
stream's duplicate window, so the stream holds the event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.db import Database, normalise_pg_url
from studio_common.errors import database_unavailable
from studio_common.events import Envelope, EventPayload, subject_for
from studio_common.observability import MessagingMetrics
from studio_common.tasks import stop_task
from studio_common.telemetry import current_trace_headers, message_span

log = logging.getLogger("studio.outbox")

DUPLICATE_WINDOW_SECONDS = 120.0
RELISTEN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class MessagingTables:
    outbox: Table
    inbox: Table

    @property
    def notify_channel(self) -> str:
        # "<schema>_outbox" for a service's own outbox, as before there were others.
        return f"{self.outbox.schema}_{self.outbox.name}"


def outbox_columns() -> list[Any]:
    """The outbox's columns and constraints, fresh for each table (or migration)."""
    return [
        Column("id", UUID(as_uuid=True), nullable=False),
        Column("event_type", String(120), nullable=False),
        Column("version", Integer, nullable=False),
        Column("envelope", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        PrimaryKeyConstraint("id"),
    ]


def inbox_columns() -> list[Any]:
    return [
        Column("consumer", String(120), nullable=False),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("event_type", String(120), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    ]


def pending_index_name(outbox: str) -> str:
    return f"ix_{outbox}_pending"


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """An outbox table in a service's schema (a process with its own relay has its own)."""
    return Table(
        name,
        metadata,
        *outbox_columns(),
        Index(
            pending_index_name(name),
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


def messaging_tables(metadata: MetaData) -> MessagingTables:
    """Declare the outbox and inbox tables inside a service's own schema."""
    return MessagingTables(
        outbox=outbox_table(metadata), inbox=Table("inbox", metadata, *inbox_columns())
    )


async def enqueue(
    session: AsyncSession,
    tables: MessagingTables,
    payload: EventPayload,
    *,
    headers: Mapping[str, str] | None = None,
) -> Envelope:
    """Add an event to the outbox inside the caller's transaction."""
    envelope = Envelope.wrap(payload)
    await session.execute(
        tables.outbox.insert().values(
            id=envelope.id,
            event_type=envelope.type,
            version=envelope.version,
            envelope=envelope.model_dump(mode="json", by_alias=True),
            # The writing transaction's trace context travels with the event.
            headers={**current_trace_headers(), **dict(headers or {})},
            # now() is the transaction's start, the same for every event it
            # enqueues; the relay orders by created_at, so take the wall clock.
            created_at=func.clock_timestamp(),
        )
    )
    # NOTIFY is transactional: the relay wakes only if this commits.
    await session.execute(select(func.pg_notify(tables.notify_channel, "")))
    return envelope


async def ensure_stream(
    js: JetStreamContext, name: str, subject_root: str, replicas: int | None = None
) -> None:
    """Create or update the event stream. `replicas` (STUDIO_NATS_STREAM_REPLICAS:
    3 on a 3-node JetStream cluster) is applied when given; a caller without it
    keeps what the stream has (1 when it creates it)."""
    config = StreamConfig(
        name=name,
        subjects=[f"{subject_root}.>"],
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas or 1,
    )
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        if replicas is None:
            config.num_replicas = info.config.num_replicas or 1
        await js.update_stream(config)


class OutboxRelay:
    """Moves committed outbox rows to JetStream, oldest first."""

    def __init__(
        self,
        database: Database,
        tables: MessagingTables,
        js: JetStreamContext,
        *,
        subject_root: str,
        stream: str,
        batch_size: int = 100,
        poll_interval: float = 0.5,
        metrics: MessagingMetrics | None = None,
        connected: Callable[[], bool] | None = None,
    ) -> None:
        self.metrics = metrics
        # While this says NATS is down the relay leaves the rows where they are.
        self.connected = connected
        self._failing = False
        # Whether the last round found the database away (one WARNING per outage).
        self._database_down = False
        self.database = database
        self.tables = tables
        self.js = js
        self.subject_root = subject_root
        self.stream = stream
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_attempted_at = 0.0

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were published."""
        outbox = self.tables.outbox
        published: list[uuid.UUID] = []
        types: list[str] = []
        async with self.database.transaction() as session:
            rows = (
                await session.execute(
                    select(outbox.c.id, outbox.c.event_type, outbox.c.envelope, outbox.c.headers)
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.created_at, outbox.c.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                try:
                    await self._publish(row.id, row.event_type, row.envelope, row.headers)
                except Exception as exc:
                    # Keep order: stop at the first failure and retry it next round.
                    # One warning per outage, not one per round.
                    if not self._failing:
                        log.warning(
                            "outbox publish failed; holding events",
                            extra={"event_id": str(row.id), "error": repr(exc)},
                        )
                    self._failing = True
                    await session.execute(
                        update(outbox)
                        .where(outbox.c.id == row.id)
                        .values(attempts=outbox.c.attempts + 1, last_error=str(exc)[:2000])
                    )
                    break
                published.append(row.id)
                types.append(row.event_type)
                if self._failing:
                    log.warning("outbox publishing again")
                    self._failing = False
            if published:
                await session.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(published))
                    .values(published_at=datetime.now(UTC), attempts=outbox.c.attempts + 1)
                )
        if self.metrics is not None:
            for event_type in types:
                self.metrics.published(event_type)
        return len(published)

    async def lag_seconds(self) -> float:
        """Age of the oldest unpublished row (0 when none waits), by the database's clock."""
        outbox = self.tables.outbox
        async with self.database.transaction() as session:
            age = await session.scalar(
                select(
                    func.extract("epoch", func.clock_timestamp() - func.min(outbox.c.created_at))
                ).where(outbox.c.published_at.is_(None))
            )
        return float(age or 0.0)

    async def _publish(
        self,
        event_id: uuid.UUID,
        event_type: str,
        envelope: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        import json

        subject = subject_for(self.subject_root, event_type)
        with message_span(
            f"{event_type} publish",
            headers,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": subject,
                "messaging.message.id": str(event_id),
            },
            service="outbox",
        ):
            hdrs = {
                **headers,
                **current_trace_headers(),
                "Nats-Msg-Id": str(event_id),
                "Studio-Event-Type": event_type,
                "Studio-Event-Version": str(envelope.get("version", 1)),
            }
            await self.js.publish(
                subject,
                json.dumps(envelope, separators=(",", ":")).encode(),
                headers=hdrs,
                stream=self.stream,
            )

    async def _listen(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        self._listen_attempted_at = time.monotonic()
        url = normalise_pg_url(self.database.engine.url.render_as_string(hide_password=False))
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(url, timeout=5)
            await conn.add_listener(self.tables.notify_channel, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError):
            log.warning("outbox relay cannot LISTEN; falling back to polling")
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            return
        self._listener = conn

    def _should_relisten(self) -> bool:
        if self._listener is not None and not self._listener.is_closed():
            return False
        return time.monotonic() - self._listen_attempted_at >= RELISTEN_SECONDS

    async def run(self) -> None:
        await self._listen()
        failures = 0
        while True:
            # Cleared before the round, not after: a NOTIFY that arrives while
            # the round runs must wake the next one instead of being lost.
            self._wake.clear()
            if self.connected is not None and not self.connected():
                # Woken by wake() once the connection is back.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RELISTEN_SECONDS)
                continue
            try:
                n = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if not database_unavailable(exc):
                    log.exception("outbox relay round failed", extra={"failures": failures})
                elif not self._database_down:
                    # One line per outage, not a traceback per round.
                    log.warning("outbox relay: the database is unavailable; retrying: %r", exc)
                    self._database_down = True
                n = 0
            else:
                if self._database_down:
                    self._database_down = False
                    log.warning("outbox relay: the database answers again")
                failures = failures + 1 if self._failing else 0
                if self._should_relisten():
                    # The database is back, or the LISTEN connection dropped.
                    await self._listen()
            if n >= self.batch_size:
                continue
            # Back off while the database or NATS is down instead of logging a
            # traceback every poll interval.
            delay = min(30.0, self.poll_interval * 2 ** min(failures, 10))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def wake(self) -> None:
        """Publish now (e.g. NATS is back) instead of after the current wait."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self.run(), name=f"outbox-relay-{self.tables.outbox.schema}"
            )

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
