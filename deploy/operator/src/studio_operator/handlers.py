"""kopf handlers: a timer per TranscoderAutoscaler sets its Deployment's replicas.

Every interval the timer reads the consumer's queue from NATS and the
Deployment's scale, asks :func:`studio_operator.decision.decide`, patches the
scale when the answer differs, and writes what it saw and decided to the
resource's status. A failure to read leaves the replicas alone and says why in
the status; the next tick tries again.

The clients live in kopf's ``memo`` (set at start-up), so a test calls
:func:`autoscale` directly with fakes and a plain ``kopf.Patch``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from studio_operator.busy import PodClient, RunningReader, mark_deployment
from studio_operator.decision import Decision, Policy, QueueLoad, decide
from studio_operator.jetstream import JetStreamReader, LoadReader, QueueReadError
from studio_operator.kube import (
    HttpRunningReader,
    KubernetesPods,
    KubernetesScaler,
    ScaleClient,
    TargetNotFound,
)
from studio_operator.settings import GROUP, PLURAL, VERSION, OperatorSettings

SETTINGS = OperatorSettings.from_env()

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Namespaced, least privilege: no watching of CRDs or namespaces cluster-wide,
    # no peering objects (one replica runs, with the Recreate strategy).
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    memo.reader = JetStreamReader()
    memo.scaler = await KubernetesScaler.connect()
    memo.pods = KubernetesPods(memo.scaler.api_client)
    memo.running = HttpRunningReader()


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    reader: JetStreamReader | None = memo.get("reader")
    scaler: KubernetesScaler | None = memo.get("scaler")
    running: HttpRunningReader | None = memo.get("running")
    if running is not None:
        await running.close()
    if reader is not None:
        await reader.close()
    if scaler is not None:
        await scaler.close()


@kopf.timer(GROUP, VERSION, PLURAL, interval=SETTINGS.interval_seconds, initial_delay=2.0)
async def autoscale(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    **_: Any,
) -> None:
    clock: Clock = memo.get("clock", utcnow)
    await reconcile(
        spec=spec,
        status=status,
        namespace=namespace or "default",
        patch=patch,
        reader=memo.reader,
        scaler=memo.scaler,
        now=clock(),
        logger=logger,
        pods=memo.get("pods"),
        running=memo.get("running"),
    )


async def reconcile(
    *,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    namespace: str,
    patch: kopf.Patch,
    reader: LoadReader,
    scaler: ScaleClient,
    now: datetime,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
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
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
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
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
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
