"""Long-running jobs from JetStream: the work-queue side of the runtime.

Where :class:`~studio_common.consumer.EventConsumers` applies short events in
one transaction each, a :class:`JobConsumer` hands a message to a handler that
may run for many minutes. Every replica pulls from the same durable consumer
(one per event type), so each message goes to one worker. While its job runs
the message stays unacknowledged and is kept alive with in-progress acks; a
worker that dies (even ``kill -9``) stops sending them and JetStream hands the
message to another replica after ``ack_wait``.

The handler settles its message: :meth:`JobMessage.ack`, :meth:`JobMessage.nak`
(with a delay, for a retry), or :meth:`JobMessage.dead_letter`. On SIGTERM
intake stops, running jobs get a grace period, and the handler is then
cancelled; a message it did not settle is handed back (nak, redelivered at
once to another replica). A message that cannot be read is dead-lettered.
Dead-lettering, the consumer configuration and the tracing span are the event
consumers' own (:mod:`studio_common.consumer`).

The consumer also keeps what a liveness probe asks (:meth:`JobConsumer.liveness`):
a fetch loop with a free slot that has not turned for ``liveness_seconds``
while NATS is up, or an event loop that stopped running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from studio_common.consumer import (
    consume_span,
    consumer_config,
    publish_dead_letter,
    unsubscribe_all,
)
from studio_common.events import Envelope, EventPayload, subject_for
from studio_common.natsconn import reconnect_delay
from studio_common.runtime import Runtime

log = logging.getLogger("studio.jobs")
# How long a fetch waits when fetch loops share too few slots: a message for
# another loop waits at most this long (a fetch request is cheap for NATS).
SHARED_FETCH_SECONDS = 0.1


@dataclass
class JobMessage:
    """One delivery of a job event, for its handler to settle once."""

    msg: Msg
    envelope: Envelope
    payload: EventPayload
    durable: str
    consumer: JobConsumer = field(repr=False)
    settled: bool = False

    @property
    def num_delivered(self) -> int:
        return self.msg.metadata.num_delivered if self.msg.metadata else 1

    async def ack(self) -> None:
        self.settled = True
        await self.msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Redeliver after ``delay`` seconds (at once without one: a hand-back)."""
        self.settled = True
        await self.msg.nak(delay=delay)

    async def dead_letter(self, reason: str) -> None:
        self.settled = True
        await self.consumer.dead_letter(self.msg, self.durable, self.envelope.type, reason)


JobHandler = Callable[[JobMessage], Awaitable[None]]
# Waits (up to the given seconds) until the process can take a job; False: not now.
Intake = Callable[[float], Awaitable[bool]]


class JobConsumer:
    def __init__(
        self,
        runtime: Runtime[Any],
        handler: JobHandler,
        *,
        events: tuple[type[EventPayload], ...],
        concurrency: int = 1,
        ack_wait: float = 60.0,
        max_deliver: int = 10,
        fetch_timeout: float = 2.0,
        liveness_seconds: float = 60.0,
        intake: Intake | None = None,
        intake_wait: float = 30.0,
        on_dead_letter: Callable[[], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.handler = handler
        self.events = events
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.fetch_timeout = fetch_timeout
        self.liveness_seconds = liveness_seconds
        self.intake = intake
        self.intake_wait = intake_wait
        self.on_dead_letter = on_dead_letter
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._subscriptions: list[JetStreamContext.PullSubscription] = []
        self._jobs: set[asyncio.Task[None]] = set()
        self._closed = False
        # What liveness reads: when the event loop last ran, when each fetch loop last turned.
        self._heartbeat = time.monotonic()
        self._turned: dict[str, float] = {}

    def durable_name(self, event_type: str) -> str:
        return f"{self.runtime.name}-{event_type.replace('.', '-')}"

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        for event_cls in self.events:
            subscription = await self._subscribe(event_cls.event_type)
            self._subscriptions.append(subscription)
            self._loops.append(
                asyncio.create_task(
                    self._fetch_loop(subscription), name=f"fetch-{event_cls.event_type}"
                )
            )
        self._loops.append(asyncio.create_task(self._refresh_queue_metrics(), name="queue-metrics"))
        self._loops.append(asyncio.create_task(self._beat(), name="heartbeat"))

    async def _subscribe(self, event_type: str) -> JetStreamContext.PullSubscription:
        s = self.runtime.settings
        durable = self.durable_name(event_type)
        config = consumer_config(
            durable,
            subject_for(s.event_subject_root, event_type),
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
        )
        # Creates the consumer or updates its settings (ack_wait, max_deliver).
        js = self.runtime.js
        await js.add_consumer(s.event_stream, config=config)
        return await js.pull_subscribe_bind(durable, stream=s.event_stream)

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self, grace: float) -> None:
        """Stops pulling, gives running jobs ``grace`` seconds, then cancels them
        (their handlers hand their messages back)."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await unsubscribe_all(self._subscriptions)
        if self._jobs:
            log.info("waiting for running jobs", extra={"jobs": len(self._jobs), "grace": grace})
            _, pending = await asyncio.wait(set(self._jobs), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- liveness -----------------------------------------------------------

    def liveness(self) -> str | None:
        """Why the process should be restarted, or None while it is alive.

        Called from the probe thread. A fetch loop that waits for a free slot
        or for NATS to return is alive; one that has not turned for
        ``liveness_seconds`` while it could is not.
        """
        now = time.monotonic()
        bound = self.liveness_seconds
        if now - self._heartbeat > bound:
            return "the event loop has not run for %.0f s" % (now - self._heartbeat)
        if self.runtime.nats.connected and not self._slots.locked():
            for name, turned in list(self._turned.items()):
                if now - turned > bound:
                    return f"{name} has not fetched for {now - turned:.0f} s"
        return None

    async def _beat(self) -> None:
        while not self._stopping.is_set():
            self._heartbeat = time.monotonic()
            await self._sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        """Sleeps, or less once the consumer stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _refresh_queue_metrics(self) -> None:
        """Pending and unacknowledged messages of each durable: the queue of the work."""
        s = self.runtime.settings
        while not self._stopping.is_set():
            if self.runtime.nats.connected:
                try:
                    for event_cls in self.events:
                        durable = self.durable_name(event_cls.event_type)
                        info = await self.runtime.js.consumer_info(s.event_stream, durable)
                        self.runtime.messaging_metrics.set_pending(
                            durable, info.num_pending or 0, info.num_ack_pending or 0
                        )
                except Exception:
                    log.warning("could not read the queue's consumer info", exc_info=True)
            await self._sleep(s.metrics_refresh_seconds)

    # --- pulling ------------------------------------------------------------

    async def _fetch_loop(self, subscription: JetStreamContext.PullSubscription) -> None:
        name = asyncio.current_task().get_name()  # type: ignore[union-attr]
        failures = 0
        while await self._free_slot():
            self._turned[name] = time.monotonic()
            if not self.runtime.nats.connected:
                # Waits for the reconnect instead of failing a fetch per turn.
                self._slots.release()
                await self._until(self.runtime.nats.wait_connected(self.fetch_timeout))
                continue
            if self.intake is not None and not await self._until(self.intake(self.intake_wait)):
                # The process cannot take a job now (e.g. its storage is away).
                self._slots.release()
                continue
            try:
                msgs = await subscription.fetch(1, timeout=self._loop_fetch_timeout())
            except (NatsTimeout, TimeoutError):
                self._slots.release()
                failures = 0
                continue
            except Exception:
                self._slots.release()
                failures += 1
                if failures == 1:
                    log.warning("fetching from JetStream failed", exc_info=True)
                await self._sleep(reconnect_delay(failures, base=0.5, cap=10.0))
                continue
            failures = 0
            task = asyncio.create_task(self._handle(msgs[0]))
            self._jobs.add(task)
            task.add_done_callback(self._job_done)

    def _loop_fetch_timeout(self) -> float:
        """A fetch holds a slot while it waits. With more fetch loops than slots
        (a worker of one slot taking jobs and their parts) a message for another
        loop would wait out the whole fetch: the loops then take turns quickly."""
        if len(self.events) > self._concurrency:
            return min(self.fetch_timeout, SHARED_FETCH_SECONDS)
        return self.fetch_timeout

    async def _until(self, waiting: Awaitable[bool]) -> bool:
        """``waiting``'s answer, or False as soon as the consumer stops."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        answer = asyncio.ensure_future(waiting)
        await asyncio.wait({stopping, answer}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not answer.done():
            answer.cancel()
            return False
        return bool(answer.result()) and not self._stopping.is_set()

    async def _free_slot(self) -> bool:
        """Waits for room for one more job; False once the consumer is stopping."""
        acquire = asyncio.ensure_future(self._slots.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquire.done():
            acquire.cancel()
        try:
            await acquire
        except asyncio.CancelledError:
            return False
        if self._stopping.is_set():
            self._slots.release()
            return False
        return True

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("job handler crashed", exc_info=task.exception())

    # --- one message --------------------------------------------------------

    async def _handle(self, msg: Msg) -> None:
        event_type = (msg.headers or {}).get("Studio-Event-Type") or msg.subject.removeprefix(
            f"{self.runtime.settings.event_subject_root}."
        )
        durable = self.durable_name(event_type)
        with consume_span(event_type, msg, durable, self.runtime.name):
            try:
                envelope = Envelope.model_validate_json(msg.data)
                if self._unhandled_version(envelope):
                    # As the event consumers do (ADR 1): acked and counted.
                    self.runtime.messaging_metrics.skipped_version(durable, envelope.version)
                    await msg.ack()
                    return
                payload = envelope.payload()
                if not isinstance(payload, self.events):
                    raise ValueError(f"{envelope.type} is not a job event here")
            except Exception as exc:
                await self.dead_letter(msg, durable, event_type, f"unreadable: {exc}")
                return
            job = JobMessage(msg, envelope, payload, durable, self)
            keepalive = asyncio.create_task(self._keep_alive(msg))
            try:
                await self.handler(job)
            except asyncio.CancelledError:
                if not job.settled:
                    with contextlib.suppress(Exception):
                        await job.nak()
                raise
            finally:
                keepalive.cancel()

    def _unhandled_version(self, envelope: Envelope) -> bool:
        handled = {(e.event_type, e.event_version) for e in self.events}
        types = {event_type for event_type, _ in handled}
        return envelope.type in types and (envelope.type, envelope.version) not in handled

    async def _keep_alive(self, msg: Msg) -> None:
        interval = max(0.5, self.ack_wait / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
            except Exception:
                log.warning("in-progress ack failed", exc_info=True)

    async def dead_letter(self, msg: Msg, durable: str, event_type: str, reason: str) -> None:
        s = self.runtime.settings
        await publish_dead_letter(
            self.runtime.js,
            msg,
            subject_root=s.event_subject_root,
            stream=s.event_stream,
            durable=durable,
            event_type=event_type,
            reason=reason,
        )
        await msg.ack()
        self.runtime.messaging_metrics.dead_lettered(durable)
        if self.on_dead_letter is not None:
            self.on_dead_letter()
