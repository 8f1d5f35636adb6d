"""Busy workers marked, so a scale-down or a node drain takes an idle one.

Every tick the operator reads each worker pod's `transcoder_jobs_running` gauge
(its metrics port) and keeps three annotations in step with it:

- ``controller.kubernetes.io/pod-deletion-cost``: the ReplicaSet controller
  deletes the pods of lowest cost first when the operator lowers replicas, so
  idle workers (0) go before busy ones (BUSY_COST per running job);
- ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`` and
  ``karpenter.sh/do-not-disrupt: "true"`` while a job runs, so node autoscalers
  do not pick that node for consolidation; removed once the worker is idle.

A worker whose metrics cannot be read keeps the annotations it has: no
information is not idleness. Only pods whose annotations change are patched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
BUSY_COST = 1000
RUNNING_METRIC = "transcoder_jobs_running"
_SAMPLE = re.compile(rf"^{RUNNING_METRIC}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class WorkerPod:
    name: str
    ip: str | None
    annotations: Mapping[str, str]
    # Terminating pods drain on their own; they are not marked any more.
    deleting: bool = False


class PodClient(Protocol):
    async def selector(self, namespace: str, deployment: str) -> str:
        """The Deployment's pod selector (from its scale subresource)."""
        ...

    async def list_pods(self, namespace: str, selector: str) -> list[WorkerPod]: ...

    async def annotate(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None: ...


class RunningReader(Protocol):
    async def running(self, ip: str, port: int) -> int | None:
        """Jobs the worker at ip runs now; None when it cannot be read."""
        ...


def parse_running(metrics_text: str) -> int | None:
    """The gauge's value from a Prometheus text exposition."""
    match = _SAMPLE.search(metrics_text)
    if match is None:
        return None
    try:
        return max(0, int(float(match.group(1))))
    except ValueError:
        return None


def marking(running: int, current: Mapping[str, str]) -> dict[str, str | None]:
    """The annotation changes (None removes one) that make `current` say `running`."""
    wanted: dict[str, str | None] = {
        DELETION_COST: str(BUSY_COST * running),
        SAFE_TO_EVICT: "false" if running else None,
        DO_NOT_DISRUPT: "true" if running else None,
    }
    return {key: value for key, value in wanted.items() if current.get(key) != value}


async def mark_workers(
    pods: PodClient, reader: RunningReader, namespace: str, selector: str, port: int
) -> dict[str, int]:
    """Mark every live worker pod; returns the jobs each one runs (read ones only)."""
    seen: dict[str, int] = {}
    for pod in await pods.list_pods(namespace, selector):
        if pod.deleting or not pod.ip:
            continue
        running = await reader.running(pod.ip, port)
        if running is None:
            continue
        seen[pod.name] = running
        changes = marking(running, pod.annotations)
        if changes:
            await pods.annotate(namespace, pod.name, changes)
    return seen


async def mark_deployment(
    pods: PodClient, reader: RunningReader, namespace: str, deployment: str, port: int
) -> dict[str, int]:
    selector = await pods.selector(namespace, deployment)
    return await mark_workers(pods, reader, namespace, selector, port)
