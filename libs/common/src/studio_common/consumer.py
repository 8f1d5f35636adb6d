"""Idempotent JetStream consumers on FastStream.

Each handler gets its own durable pull consumer filtered to one event type.
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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
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


class EventConsumers:
    def __init__(
        self,
        broker: NatsBroker,
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
    ) -> None:
        self.metrics = metrics
        self.broker = broker
        self.database = database
        self.tables = tables
        self.service = service
        self.stream = stream
        self.subject_root = subject_root
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.retry_backoff = retry_backoff
        self.durables: list[str] = []
        # Whether the last attempt found the database away (see _wait_for_database).
        self._database_down = False
        self._database_waits = 0

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
        event_type = event_cls.event_type
        durable = self.durable_name(event_type, event_cls.event_version)
        self.durables.append(durable)
        config = consumer_config(
            durable,
            subject_for(self.subject_root, event_type),
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
        )

        async def on_message(msg: NatsMessage) -> None:
            await self._process(msg, event_cls, handler, durable)

        self.broker.subscriber(
            subject_for(self.subject_root, event_type),
            stream=JStream(self.stream, declare=False),
            durable=durable,
            config=config,
            pull_sub=PullSub(batch_size=PULL_BATCH, timeout=PULL_TIMEOUT_SECONDS),
            ack_policy=AckPolicy.MANUAL,
            title=durable,
        )(on_message)

    async def _process(
        self, msg: NatsMessage, event_cls: type[E], handler: Handler[E], durable: str
    ) -> None:
        with consume_span(event_cls.event_type, msg.raw_message, durable, self.service):
            await self._process_in_span(msg, event_cls, handler, durable)

    async def _process_in_span(
        self, msg: NatsMessage, event_cls: type[E], handler: Handler[E], durable: str
    ) -> None:
        raw = msg.raw_message
        num_delivered = raw.metadata.num_delivered if raw.metadata else 1
        try:
            envelope = Envelope.model_validate_json(raw.data)
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

    async def _skip_version(self, msg: NatsMessage, durable: str, envelope: Envelope) -> None:
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

    async def _wait_for_database(self, msg: NatsMessage, exc: Exception) -> None:
        if not self._database_down:
            # One line per outage, not one per event and attempt.
            log.warning("the database is unavailable; holding events until it answers: %r", exc)
            self._database_down = True
        self._database_waits += 1
        delay = min(DATABASE_RETRY_MAX_SECONDS, 0.5 * 2 ** min(self._database_waits, 6))
        with contextlib.suppress(Exception):
            # Still being worked on: JetStream keeps it off other replicas meanwhile.
            await msg.raw_message.in_progress()
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter, not a secret)

    async def _failed(
        self, msg: NatsMessage, envelope: Envelope, exc: Exception, num_delivered: int, durable: str
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
            await msg.nack(delay=self.retry_backoff(num_delivered))

    async def refresh_metrics(self) -> None:
        """Pending and unacknowledged messages of every durable, from JetStream."""
        if self.metrics is None:
            return
        js = self.broker.connection.jetstream()
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

    async def _dead_letter(
        self, msg: NatsMessage, durable: str, event_type: str, reason: str
    ) -> None:
        await publish_dead_letter(
            self.broker.connection.jetstream(),
            msg.raw_message,
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


def convert_bare_fetch_timeouts() -> None:
    """Every pull subscription's ``fetch`` raises nats' ``TimeoutError``, never a bare one.

    :func:`harden_pull_fetch` does this per subscription, but only once the
    broker has started: each subscriber's first fetch is already under way by
    then, and on a loaded machine it could still end in a bare timeout (an
    ERROR traceback from FastStream's supervisor shortly after start). Patched
    on the class, before the broker starts, no fetch escapes it. Idempotent.
    """
    import nats.errors
    from nats.js.client import JetStreamContext

    cls = JetStreamContext.PullSubscription
    fetch = cls.fetch
    if getattr(fetch, "_studio_timeouts", False):
        return

    async def fetch_with_nats_timeouts(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(self, *args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    fetch_with_nats_timeouts._studio_timeouts = True  # type: ignore[attr-defined]
    cls.fetch = fetch_with_nats_timeouts  # type: ignore[method-assign]


def harden_pull_fetch(broker: NatsBroker, link: NatsLink | None = None) -> None:
    """Make a pull fetch end the way FastStream's loop expects, and never spin.

    nats-py's ``fetch`` raises a bare ``asyncio.TimeoutError`` when its deadline
    passes between its two internal requests; FastStream's pull loop only
    suppresses nats' own ``TimeoutError`` subclass, so the bare one kills the
    loop task and the supervisor restarts it with an error traceback. Converting
    it per subscription keeps the loop running quietly.

    FastStream's loop also retries at once after a ``ConnectionClosedError``,
    without yielding to the event loop: on a closed connection the process sits
    at 100 % CPU and answers nothing, not even SIGTERM. While ``link`` says the
    connection is down the fetch waits for it instead (as an idle fetch would),
    and any other NATS failure pauses before it is raised.
    """
    import nats.errors

    for subscriber in broker.subscribers:
        subscription = getattr(subscriber, "subscription", None)
        fetch = getattr(subscription, "fetch", None)
        if fetch is None or getattr(fetch, "_studio_hardened", False):
            continue

        async def hardened(*args: Any, _fetch: Any = fetch, **kwargs: Any) -> Any:
            timeout = float(kwargs.get("timeout") or 5.0)
            if link is not None and not await link.wait_connected(timeout):
                raise nats.errors.TimeoutError
            try:
                return await _fetch(*args, **kwargs)
            except nats.errors.TimeoutError:
                raise
            except TimeoutError as exc:
                raise nats.errors.TimeoutError from exc
            except nats.errors.Error:
                await asyncio.sleep(FETCH_FAILURE_PAUSE_SECONDS)
                raise

        hardened._studio_hardened = True  # type: ignore[attr-defined]
        subscription.fetch = hardened  # type: ignore[union-attr]
