"""Idempotent JetStream consumers, on nats-py (ADR 10).

Each handler gets its own durable pull consumer filtered to one event type,
and a fetch loop that asks for up to ``PULL_BATCH`` messages and handles a
batch concurrently.
A message is applied at most once per consumer: its event id is inserted into
the service's inbox in the same transaction as the handler's changes, and the
message is acked only after that transaction commits. A redelivery of an
applied event finds the id and is acked without running the handler again.
A message that keeps failing goes to ``<root>.dlq.<consumer>.<type>`` after
``max_deliver`` attempts; one that cannot be parsed goes there at once. A
version of the event the handler does not handle is acked and counted
(``consumer_skipped_versions_total``): producers emit both versions during a
breaking change (ADR 1), and each version has its own handler and durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.db import Database
from studio_common.errors import database_unavailable
from studio_common.events import (
    Envelope,
    EventPayload,
    UnknownEventError,
    dead_letter_subject,
    subject_for,
)
from studio_common.natsconn import NatsLink
from studio_common.observability import MessagingMetrics
from studio_common.outbox import MessagingTables
from studio_common.tasks import stop_task
from studio_common.telemetry import message_span

log = logging.getLogger("studio.consumer")

# Messages a pull asks for at once, and how long an idle fetch waits: fetch()
# returns as soon as messages arrive, the timeout only bounds an idle wait.
PULL_BATCH = 10
PULL_TIMEOUT_SECONDS = 5.0
# A fetch that fails at once (closed connection, no responders) waits this long
# before its loop tries again.
FETCH_FAILURE_PAUSE_SECONDS = 1.0

E = TypeVar("E", bound=EventPayload)
Handler = Callable[[E, Envelope, AsyncSession], Awaitable[None]]


class PoisonMessage(Exception):
    """Raised for a message that can never be processed."""


class UnknownEntity(Exception):
    """A handler's refusal of an event about something this service never heard of.

    Nothing is projected (the transaction rolls back). The event is retried with
    backoff, since the event that introduces the entity may come later on its
    own consumer, and dead-lettered after ``max_deliver`` deliveries.
    """


@dataclass(frozen=True, slots=True)
class Delivery:
    envelope: Envelope
    num_delivered: int


def exponential_backoff(num_delivered: int) -> float:
    """Seconds before redelivering a message that failed ``num_delivered`` times: 1, 2, 4 ... 30."""
    return float(min(30, 2 ** max(0, num_delivered - 1)))


RetryBackoff = Callable[[int], float]
# The longest wait between two tries of an event while the database is away.
DATABASE_RETRY_MAX_SECONDS = 10.0


async def unsubscribe_all(subscriptions: Sequence[JetStreamContext.PullSubscription]) -> None:
    """Unsubscribe stopped pull subscriptions before the connection drains: nats-py
    waits out its whole drain timeout on a pull subscription left subscribed. A
    message a cancelled fetch was about to receive is redelivered after ack_wait."""
    for subscription in subscriptions:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


def consumer_config(
    durable: str, subject: str, *, ack_wait: float, max_deliver: int
) -> ConsumerConfig:
    """A durable, explicitly acked pull consumer of one subject, every event from the start."""
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=JsAckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        # One more than ours: a crash during the last attempt still gets a
        # delivery on which the message is dead-lettered.
        max_deliver=max_deliver + 1,
        filter_subject=subject,
    )


@contextmanager
def consume_span(event_type: str, raw: Msg, durable: str, service: str) -> Iterator[None]:
    """A CONSUMER span continuing the trace in the message's headers, so whatever
    the handler enqueues carries it on."""
    with message_span(
        f"{event_type} process",
        raw.headers,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": raw.subject,
            "messaging.consumer.group.name": durable,
        },
        service=service,
    ):
        yield


async def publish_dead_letter(
    js: JetStreamContext,
    raw: Msg,
    *,
    subject_root: str,
    stream: str,
    durable: str,
    event_type: str,
    reason: str,
) -> None:
    """Park ``raw`` on ``<root>.dlq.<durable>.<type>``; the caller then acks it."""
    headers: dict[str, Any] = dict(raw.headers or {})
    headers.pop("Nats-Msg-Id", None)
    headers.pop("Nats-Expected-Stream", None)
    if raw.metadata is not None:
        # A crash between this publish and the ack redelivers the message;
        # the stream's duplicate window then keeps one dead letter, not two.
        headers["Nats-Msg-Id"] = f"dlq:{durable}:{raw.metadata.sequence.stream}"
    headers["Studio-Dead-Letter-Reason"] = reason[:1000]
    headers["Studio-Original-Subject"] = raw.subject
    await js.publish(
        dead_letter_subject(subject_root, durable, event_type),
        raw.data,
        headers=headers,
        stream=stream,
    )
    log.error("event dead-lettered", extra={"consumer": durable, "reason": reason[:200]})


@dataclass(frozen=True, slots=True)
class Subscription:
    """One handler's durable: what :meth:`EventConsumers.start` subscribes."""

    event_cls: type[EventPayload]
    handler: Handler[Any]
    durable: str
    subject: str
    config: ConsumerConfig


class EventConsumers:
    def __init__(
        self,
        connection: NatsClient,
        database: Database,
        tables: MessagingTables,
        *,
        service: str,
        stream: str,
        subject_root: str,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        retry_backoff: RetryBackoff = exponential_backoff,
        metrics: MessagingMetrics | None = None,
        link: NatsLink | None = None,
    ) -> None:
        self.metrics = metrics
        self.connection = connection
        self.database = database
        self.tables = tables
        self.service = service
        self.stream = stream
        self.subject_root = subject_root
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.retry_backoff = retry_backoff
        # While the link says NATS is away the fetch loops wait for it.
        self.link = link
        self.durables: list[str] = []
        self.subscriptions: list[Subscription] = []
        self._loops: list[asyncio.Task[None]] = []
        self._pulls: list[JetStreamContext.PullSubscription] = []
        # Whether the last attempt found the database away (see _wait_for_database).
        self._database_down = False
        self._database_waits = 0

    @property
    def js(self) -> JetStreamContext:
        return self.connection.jetstream()

    def durable_name(self, event_type: str, version: int = 1) -> str:
        """One durable per handled (type, version); version 1 keeps the plain name."""
        name = f"{self.service}-{event_type.replace('.', '-')}"
        return name if version == 1 else f"{name}-v{version}"

    def on(self, event_cls: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register ``handler(event, envelope, session)`` for one event type."""

        def register(handler: Handler[E]) -> Handler[E]:
            self.add(event_cls, handler)
            return handler

        return register

    def add(self, event_cls: type[E], handler: Handler[E]) -> None:
        """Register a handler; it consumes once :meth:`start` runs."""
        event_type = event_cls.event_type
        durable = self.durable_name(event_type, event_cls.event_version)
        subject = subject_for(self.subject_root, event_type)
        self.durables.append(durable)
        self.subscriptions.append(
            Subscription(
                event_cls,
                handler,
                durable,
                subject,
                consumer_config(
                    durable, subject, ack_wait=self.ack_wait, max_deliver=self.max_deliver
                ),
            )
        )

    async def start(self) -> None:
        """Subscribe every registered handler (creating its durable where it is
        missing; an existing one keeps its settings) and start its fetch loop."""
        for sub in self.subscriptions:
            pull = await self.js.pull_subscribe(
                sub.subject, durable=sub.durable, stream=self.stream, config=sub.config
            )
            self._pulls.append(pull)
            self._loops.append(asyncio.create_task(self._pull(pull, sub), name=sub.durable))

    async def stop(self) -> None:
        """Stop fetching. A batch being handled is cancelled: its transactions
        roll back and its messages, not acked, are redelivered."""
        loops, self._loops = self._loops, []
        # stop_task, not one cancel(): nats-py's fetch waits in asyncio.wait_for,
        # which on Python 3.11 can swallow a cancellation and fetch again.
        await asyncio.gather(*(stop_task(task) for task in loops))
        pulls, self._pulls = self._pulls, []
        await unsubscribe_all(pulls)

    async def _pull(self, pull: JetStreamContext.PullSubscription, sub: Subscription) -> None:
        failures = 0
        while True:
            if self.link is not None and not await self.link.wait_connected(PULL_TIMEOUT_SECONDS):
                # Waits for the reconnect instead of failing a fetch per turn.
                continue
            try:
                msgs = await pull.fetch(PULL_BATCH, timeout=PULL_TIMEOUT_SECONDS)
            except (nats.errors.TimeoutError, TimeoutError):
                # Idle; nats-py also raises a bare TimeoutError when the deadline
                # passes between its two internal requests.
                failures = 0
                continue
            except Exception:
                # A closed connection, no responders, ...: never retried at once,
                # which on a closed connection would spin at 100 % CPU.
                failures += 1
                if failures == 1:
                    log.warning("fetching from JetStream failed", extra={"consumer": sub.durable})
                await asyncio.sleep(FETCH_FAILURE_PAUSE_SECONDS)
                continue
            failures = 0
            await asyncio.gather(*(self._handle(msg, sub) for msg in msgs))

    async def _handle(self, msg: Msg, sub: Subscription) -> None:
        try:
            await self._process(msg, sub.event_cls, sub.handler, sub.durable)
        except Exception:
            # Not acked: JetStream redelivers it after ack_wait.
            log.exception("event handling failed", extra={"consumer": sub.durable})

    async def _process(
        self, msg: Msg, event_cls: type[E], handler: Handler[E], durable: str
    ) -> None:
        with consume_span(event_cls.event_type, msg, durable, self.service):
            await self._process_in_span(msg, event_cls, handler, durable)

    async def _process_in_span(
        self, msg: Msg, event_cls: type[E], handler: Handler[E], durable: str
    ) -> None:
        num_delivered = msg.metadata.num_delivered if msg.metadata else 1
        try:
            envelope = Envelope.model_validate_json(msg.data)
            if envelope.type != event_cls.event_type:
                raise PoisonMessage(
                    f"{envelope.type} arrived on the {event_cls.event_type} consumer"
                )
            if envelope.version != event_cls.event_version:
                await self._skip_version(msg, durable, envelope)
                return
            payload = event_cls.model_validate(envelope.data)
        except (ValidationError, ValueError, UnknownEventError, PoisonMessage) as exc:
            await self._dead_letter(msg, durable, event_cls.event_type, f"unreadable: {exc}")
            return
        while True:
            try:
                applied = await self.apply(envelope, payload, handler, durable)
            except Exception as exc:
                if not database_unavailable(exc):
                    await self._failed(msg, envelope, exc, num_delivered, durable)
                    return
                # The database away is no fault of the event: wait for it
                # without using up a delivery, so no outage dead-letters events.
                await self._wait_for_database(msg, exc)
                continue
            break
        self._database_waits = 0
        if self._database_down:
            self._database_down = False
            log.warning("the database answers again; consuming events")
        if not applied:
            log.info("duplicate event skipped", extra={"event_id": str(envelope.id)})
        await msg.ack()

    async def _skip_version(self, msg: Msg, durable: str, envelope: Envelope) -> None:
        """A version of the event this consumer does not handle: acked and counted,
        not dead-lettered. During a breaking change producers emit both versions
        (ADR 1), so the one this consumer handles arrives too; a consumer of the
        other version runs on a durable of its own."""
        log.info(
            "event version skipped",
            extra={"consumer": durable, "event_type": envelope.type, "version": envelope.version},
        )
        if self.metrics is not None:
            self.metrics.skipped_version(durable, envelope.version)
        await msg.ack()

    async def _wait_for_database(self, msg: Msg, exc: Exception) -> None:
        if not self._database_down:
            # One line per outage, not one per event and attempt.
            log.warning("the database is unavailable; holding events until it answers: %r", exc)
            self._database_down = True
        self._database_waits += 1
        delay = min(DATABASE_RETRY_MAX_SECONDS, 0.5 * 2 ** min(self._database_waits, 6))
        with contextlib.suppress(Exception):
            # Still being worked on: JetStream keeps it off other replicas meanwhile.
            await msg.in_progress()
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter, not a secret)

    async def _failed(
        self, msg: Msg, envelope: Envelope, exc: Exception, num_delivered: int, durable: str
    ) -> None:
        """The handler itself failed: retried with backoff, dead-lettered at the last delivery."""
        if num_delivered >= self.max_deliver:
            log.error(
                "handler failed for the last time",
                extra={"event_id": str(envelope.id)},
                exc_info=exc,
            )
            await self._dead_letter(msg, durable, envelope.type, repr(exc))
        else:
            log.warning(
                "handler failed; will retry",
                extra={"event_id": str(envelope.id), "attempt": num_delivered},
                # An unknown entity is an expected wait, not a bug: no traceback.
                exc_info=None if isinstance(exc, UnknownEntity) else exc,
            )
            await msg.nak(delay=self.retry_backoff(num_delivered))

    async def refresh_metrics(self) -> None:
        """Pending and unacknowledged messages of every durable, from JetStream."""
        if self.metrics is None:
            return
        js = self.js
        for durable in self.durables:
            info = await js.consumer_info(self.stream, durable)
            self.metrics.set_pending(durable, info.num_pending or 0, info.num_ack_pending or 0)

    async def apply(
        self, envelope: Envelope, payload: E, handler: Handler[E], durable: str
    ) -> bool:
        """Run ``handler`` once per (consumer, event id); False if it already ran."""
        inbox = self.tables.inbox
        async with self.database.transaction() as session:
            inserted = await session.execute(
                insert(inbox)
                .values(consumer=durable, event_id=envelope.id, event_type=envelope.type)
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
            if inserted.first() is None:
                return False
            await handler(payload, envelope, session)
        return True

    async def _dead_letter(self, msg: Msg, durable: str, event_type: str, reason: str) -> None:
        await publish_dead_letter(
            self.js,
            msg,
            subject_root=self.subject_root,
            stream=self.stream,
            durable=durable,
            event_type=event_type,
            reason=reason,
        )
        if self.metrics is not None:
            self.metrics.dead_lettered(durable)
        # Ack, not term: the message is handled (parked in the DLQ).
        await msg.ack()


def envelope_bytes(envelope: Envelope) -> bytes:
    return json.dumps(envelope.model_dump(mode="json", by_alias=True)).encode()
