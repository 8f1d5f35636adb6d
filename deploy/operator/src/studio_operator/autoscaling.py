"""Every TranscoderAutoscaler evaluated every interval, by one loop of the operator.

Each tick takes the autoscalers the operator knows of (kopf's index of them,
studio_operator.handlers), and for each one reads the consumers' queue from
NATS and the Deployment's scale, asks :func:`studio_operator.decision.decide`,
patches the scale when the answer differs, and writes what it saw and decided to
the resource's status. A failure to read leaves the replicas alone and says why
in the status; the next tick tries again.

Why a loop of the operator rather than a kopf timer per object: kopf puts a
finalizer on every object that has a timer or daemon, and only a running
operator removes it, so a TranscoderAutoscaler deleted after the operator (Helm
deletes custom resources last, Tilt and namespace deletion in any order) would
stay Terminating. An object the index no longer holds is simply not evaluated
again; nothing has to let go of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import kopf

from studio_operator.busy import PodClient, RunningReader, mark_deployment
from studio_operator.decision import Decision, Policy, QueueLoad, decide
from studio_operator.jetstream import LoadReader, QueueReadError
from studio_operator.kube import ScaleClient, TargetNotFound

Clock = Callable[[], datetime]
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
LOG = logging.getLogger("studio_operator.autoscaling")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Autoscaler:
    """What the operator keeps of one TranscoderAutoscaler (plain copies, not
    views of kopf's body)."""

    namespace: str
    name: str
    uid: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)


class StatusClient(Protocol):
    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge `status` into the object's status (None removes a field); an object
        that is gone meanwhile is no error."""
        ...


class Autoscaling:
    """The loop: one tick evaluates every known autoscaler once, one after another
    (each failure stays with its object)."""

    def __init__(
        self,
        *,
        reader: LoadReader,
        scaler: ScaleClient,
        statuses: StatusClient,
        pods: PodClient | None = None,
        running: RunningReader | None = None,
        clock: Clock = utcnow,
        logger: logging.Logger = LOG,
    ) -> None:
        self.reader = reader
        self.scaler = scaler
        self.statuses = statuses
        self.pods = pods
        self.running = running
        self.clock = clock
        self.logger = logger
        # The last status written per object (uid): what the index shows may lag
        # behind it by a watch event, and the cooldown must count from the last
        # change made, not the last one seen.
        self._written: dict[str, dict[str, Any]] = {}
        self.last_tick: datetime | None = None

    async def tick(
        self, autoscalers: Iterable[Autoscaler]
    ) -> dict[tuple[str, str], Decision | None]:
        decisions: dict[tuple[str, str], Decision | None] = {}
        current = list(autoscalers)
        for autoscaler in current:
            key = (autoscaler.namespace, autoscaler.name)
            try:
                decisions[key] = await self.evaluate(autoscaler)
            except Exception:
                self.logger.exception("evaluating %s/%s failed", *key)
                decisions[key] = None
        live = {a.uid for a in current}
        self._written = {uid: s for uid, s in self._written.items() if uid in live}
        self.last_tick = self.clock()
        return decisions

    async def evaluate(self, autoscaler: Autoscaler) -> Decision | None:
        status = {**autoscaler.status, **self._written.get(autoscaler.uid, {})}
        patch = kopf.Patch()
        logger = self.logger.getChild(f"{autoscaler.namespace}.{autoscaler.name}")
        decision = await reconcile(
            spec=autoscaler.spec,
            status=status,
            namespace=autoscaler.namespace,
            patch=patch,
            reader=self.reader,
            scaler=self.scaler,
            now=self.clock(),
            logger=logger,
            pods=self.pods,
            running=self.running,
        )
        update = dict(patch.get("status") or {})
        # Remembered before writing: the scale was changed whether or not the
        # status write goes through.
        self._written[autoscaler.uid] = {**self._written.get(autoscaler.uid, {}), **update}
        try:
            await self.statuses.patch_status(autoscaler.namespace, autoscaler.name, update)
        except Exception as exc:
            logger.warning("could not write the status: %s", _describe(exc))
        return decision

    async def run(
        self,
        autoscalers: Callable[[], Iterable[Autoscaler]],
        *,
        interval: float,
        initial_delay: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Tick every `interval` seconds until cancelled; a failing tick is logged
        and the loop goes on."""
        await sleep(initial_delay)
        while True:
            try:
                await self.tick(autoscalers())
            except Exception:
                self.logger.exception("an autoscaling tick failed")
            await sleep(interval)


async def reconcile(
    *,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    namespace: str,
    patch: kopf.Patch,
    reader: LoadReader,
    scaler: ScaleClient,
    now: datetime,
    logger: Logger,
    pods: PodClient | None = None,
    running: RunningReader | None = None,
) -> Decision | None:
    """One evaluation. Returns the decision, or None when nothing could be decided.
    With a pod client and a metrics reader, the worker pods are marked busy or
    idle first (studio_operator.busy), so a scale-down removes idle ones."""
    target = str(spec.get("targetDeployment", ""))
    try:
        policy = Policy.from_spec(spec)
        nats_url, stream, consumer = (str(spec[k]) for k in ("natsUrl", "stream", "consumer"))
        consumers = [consumer, *(str(c) for c in spec.get("additionalConsumers") or ())]
        if not target:
            raise ValueError("invalid spec: targetDeployment is empty")
    except (KeyError, ValueError) as exc:
        message = f"invalid spec: missing {exc}" if isinstance(exc, KeyError) else str(exc)
        return _failed(patch, now, message, logger)

    try:
        current = await scaler.get_replicas(namespace, target)
    except TargetNotFound as exc:
        return _failed(patch, now, str(exc), logger)
    except Exception as exc:
        return _failed(patch, now, f"reading the scale of {target}: {_describe(exc)}", logger)

    if pods is not None and running is not None:
        await _mark(pods, running, namespace, target, spec, patch, logger)

    try:
        load = await read_load(reader, nats_url, stream, consumers)
    except QueueReadError as exc:
        # Unknown load: keep the replicas as they are rather than guess.
        return _failed(patch, now, str(exc), logger, current=current)

    last_scale = parse_time(status.get("lastScaleTime"))
    decision = decide(load=load, current=current, policy=policy, last_scale=last_scale, now=now)

    if decision.replicas != current:
        try:
            await scaler.set_replicas(namespace, target, decision.replicas)
        except Exception as exc:
            return _failed(
                patch, now, f"scaling {target} to {decision.replicas}: {_describe(exc)}", logger
            )
        last_scale = now
        logger.info(
            "scaled %s from %d to %d: %s", target, current, decision.replicas, decision.reason
        )

    patch.status["replicas"] = decision.replicas
    patch.status["pending"] = None if load is None else load.pending
    patch.status["inFlight"] = None if load is None else load.in_flight
    patch.status["lastDecision"] = {
        "time": format_time(now),
        "action": decision.action.value,
        "fromReplicas": current,
        "toReplicas": decision.replicas,
        "reason": decision.reason,
    }
    patch.status["lastScaleTime"] = None if last_scale is None else format_time(last_scale)
    patch.status["error"] = None
    return decision


async def _mark(
    pods: PodClient,
    running: RunningReader,
    namespace: str,
    target: str,
    spec: Mapping[str, Any],
    patch: kopf.Patch,
    logger: Logger,
) -> None:
    """Marking is best effort: a failure is logged and scaling goes on."""
    port = int(spec.get("metricsPort") or 9104)
    try:
        seen = await mark_deployment(pods, running, namespace, target, port)
    except Exception as exc:
        logger.warning("could not mark busy workers of %s: %s", target, _describe(exc))
        return
    patch.status["busyWorkers"] = sum(1 for jobs in seen.values() if jobs)


async def read_load(
    reader: LoadReader, nats_url: str, stream: str, consumers: list[str]
) -> QueueLoad | None:
    """The summed load of the consumers the workers pull from (uploads and retries,
    say); None when none of them exists yet."""
    loads = [await reader.read(nats_url, stream, name) for name in consumers]
    found = [load for load in loads if load is not None]
    if not found:
        return None
    return QueueLoad(
        pending=sum(load.pending for load in found),
        in_flight=sum(load.in_flight for load in found),
    )


def _failed(
    patch: kopf.Patch,
    now: datetime,
    message: str,
    logger: Logger,
    *,
    current: int | None = None,
) -> Decision | None:
    """Record why nothing was decided; returns None for the caller to return."""
    logger.warning("no scaling decision: %s", message)
    if current is not None:
        patch.status["replicas"] = current
    patch.status["lastDecision"] = {
        "time": format_time(now),
        "action": "error",
        "reason": message,
    }
    patch.status["error"] = message
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp from the status; anything unreadable counts as never."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
