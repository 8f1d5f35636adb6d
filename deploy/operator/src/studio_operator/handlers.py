"""kopf handlers: an index of the TranscoderAutoscalers, and the loop that scales.

kopf watches the TranscoderAutoscalers and keeps them in an in-memory index
(:func:`autoscalers`); the start-up handler starts one loop
(:class:`studio_operator.autoscaling.Autoscaling`) that evaluates every indexed
autoscaler each ``OPERATOR_INTERVAL_SECONDS``. No handler here needs a finalizer
(kopf adds one only for timers, daemons and mandatory deletion handlers), so
deleting a TranscoderAutoscaler never waits for the operator: Helm's uninstall,
``tilt down`` and namespace deletion are clean in any order. An object that still
carries kopf's finalizer from an older operator gets it removed by kopf itself,
since nothing requires it any more.

The clients live in kopf's ``memo`` (set at start-up); the liveness probe fails
once the loop has stopped ticking.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import kopf

from studio_operator.autoscaling import Autoscaler, Autoscaling, utcnow
from studio_operator.jetstream import JetStreamReader
from studio_operator.kube import (
    HttpRunningReader,
    KubernetesPods,
    KubernetesScaler,
    KubernetesStatuses,
)
from studio_operator.settings import GROUP, PLURAL, VERSION, OperatorSettings

SETTINGS = OperatorSettings.from_env()

Key = tuple[str, str]


def _live(meta: Mapping[str, Any], **_: Any) -> bool:
    # An object being deleted (another controller's finalizer may hold it) is no
    # longer scaled: the filter drops it from the index.
    return not meta.get("deletionTimestamp")


@kopf.index(GROUP, VERSION, PLURAL, when=_live)
def autoscalers(
    namespace: str | None,
    name: str | None,
    uid: str | None,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    **_: Any,
) -> dict[Key, Autoscaler]:
    """The index the loop reads: (namespace, name) -> a copy of the object."""
    key = (namespace or "default", str(name))
    return {
        key: Autoscaler(
            namespace=key[0],
            name=key[1],
            uid=str(uid),
            spec=copy.deepcopy(dict(spec)),
            status=copy.deepcopy(dict(status)),
        )
    }


def indexed(index: Mapping[Key, Any]) -> Iterator[Autoscaler]:
    """Every autoscaler in kopf's index (a store per key, one value per object)."""
    for store in list(index.values()):
        yield from list(store)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Namespaced, least privilege: no watching of CRDs or namespaces cluster-wide,
    # no peering objects (one replica runs, with the Recreate strategy).
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    memo.reader = JetStreamReader()
    memo.scaler = await KubernetesScaler.connect()
    memo.pods = KubernetesPods(memo.scaler.api_client)
    memo.running = HttpRunningReader()
    memo.statuses = KubernetesStatuses(memo.scaler.api_client)
    memo.autoscaling = Autoscaling(
        reader=memo.reader,
        scaler=memo.scaler,
        statuses=memo.statuses,
        pods=memo.pods,
        running=memo.running,
        clock=memo.get("clock", utcnow),
    )
    # kopf passes every index by its handler's name, empty until the first
    # listing fills it; the loop reads it live on each tick.
    index: Mapping[Key, Any] = kwargs["autoscalers"]
    interval = SETTINGS.interval_seconds
    memo.autoscaling_task = asyncio.create_task(
        memo.autoscaling.run(
            lambda: indexed(index),
            interval=interval,
            initial_delay=min(2.0, interval),
        ),
        name="autoscaling",
    )


@kopf.on.probe(id="autoscaling")
def alive(memo: kopf.Memo, **_: Any) -> str | None:
    """Fails the liveness endpoint (so the kubelet restarts the operator) when the
    loop has stopped, or has not finished a tick for three intervals."""
    task: asyncio.Task[None] | None = memo.get("autoscaling_task")
    loop: Autoscaling | None = memo.get("autoscaling")
    if task is None or loop is None:
        return None  # still starting
    if task.done():
        raise RuntimeError("the autoscaling loop has stopped")
    stale_after = timedelta(seconds=max(3 * SETTINGS.interval_seconds, 60.0))
    if loop.last_tick is not None and loop.clock() - loop.last_tick > stale_after:
        raise RuntimeError(f"no autoscaling tick since {loop.last_tick.isoformat()}")
    return None if loop.last_tick is None else loop.last_tick.isoformat()


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("autoscaling_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    reader: JetStreamReader | None = memo.get("reader")
    scaler: KubernetesScaler | None = memo.get("scaler")
    running: HttpRunningReader | None = memo.get("running")
    if running is not None:
        await running.close()
    if reader is not None:
        await reader.close()
    if scaler is not None:
        await scaler.close()
