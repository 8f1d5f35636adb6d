"""Busy workers marked: the annotations each tick keeps in step with the jobs a
worker runs, read from a real HTTP /metrics, through the autoscaling loop."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from studio_operator.autoscaling import reconcile
from studio_operator.busy import (
    BUSY_COST,
    DELETION_COST,
    DO_NOT_DISRUPT,
    SAFE_TO_EVICT,
    WorkerPod,
    marking,
    parse_running,
)
from studio_operator.decision import QueueLoad
from studio_operator.kube import HttpRunningReader

from .specs import autoscaler_spec

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test")
SPEC = autoscaler_spec(metricsPort=9104)


def apply(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    out = dict(current)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_busy_and_idle_annotations():
    busy = apply({}, marking(2, {}))
    assert busy == {
        DELETION_COST: str(2 * BUSY_COST),
        SAFE_TO_EVICT: "false",
        DO_NOT_DISRUPT: "true",
    }
    idle = apply({**busy, "other": "x"}, marking(0, {**busy, "other": "x"}))
    assert idle == {DELETION_COST: "0", "other": "x"}
    # Nothing to patch when the annotations already say it.
    assert marking(0, idle) == {}
    assert marking(2, busy) == {}


@given(st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=6))
def test_marking_converges_and_idle_costs_least(sequence):
    annotations: dict[str, str] = {}
    for running in sequence:
        annotations = apply(annotations, marking(running, annotations))
        assert marking(running, annotations) == {}
        assert int(annotations[DELETION_COST]) == BUSY_COST * running
        assert (DO_NOT_DISRUPT in annotations) == (running > 0)


def test_the_gauge_is_read_from_the_exposition():
    text = (
        "# HELP transcoder_jobs_running Jobs this worker is running now.\n"
        "# TYPE transcoder_jobs_running gauge\n"
        "transcoder_jobs_running 1.0\n"
        "transcoder_jobs_running_other 7\n"
    )
    assert parse_running(text) == 1
    assert parse_running("transcoder_storage_up 1.0\n") is None


class FakePods:
    def __init__(self, pods: list[WorkerPod]) -> None:
        self.pods = {p.name: p for p in pods}
        self.patches: list[tuple[str, dict[str, str | None]]] = []

    async def selector(self, namespace: str, deployment: str) -> str:
        return f"app.kubernetes.io/component={deployment}"

    async def list_pods(self, namespace: str, selector: str) -> list[WorkerPod]:
        return list(self.pods.values())

    async def annotate(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        self.patches.append((name, dict(annotations)))
        pod = self.pods[name]
        self.pods[name] = WorkerPod(
            pod.name, pod.ip, apply(pod.annotations, annotations), pod.deleting
        )


class Scaler:
    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    async def get_replicas(self, namespace: str, name: str) -> int:
        return self.replicas

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        self.replicas = replicas


class Reader:
    async def read(self, nats_url: str, stream: str, consumer: str) -> QueueLoad | None:
        return QueueLoad(pending=0, in_flight=1)


async def reconcile_once(pods: FakePods, running: Any) -> kopf.Patch:
    """One tick of the loop over two replicas and an idle-looking queue."""
    patch = kopf.Patch()
    await reconcile(
        spec=SPEC,
        status={},
        namespace="studio",
        patch=patch,
        reader=Reader(),
        scaler=Scaler(2),
        now=NOW,
        logger=LOG,
        pods=pods,
        running=running,
    )
    return patch


async def test_the_loop_marks_workers_from_their_metrics():
    """Two workers serve /metrics over HTTP (one busy, one idle), a third cannot be
    read, a fourth is terminating: only the first two are marked."""
    gauges = {"busy": 1, "idle": 0}
    runners = []
    ports = {}
    for name, value in gauges.items():
        app = web.Application()

        async def metrics(_: web.Request, value: int = value) -> web.Response:
            return web.Response(text=f"transcoder_jobs_running {value}.0\n")

        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports[name] = runner.addresses[-1][1]

    class PortPerPod(HttpRunningReader):
        async def running(self, ip: str, port: int) -> int | None:
            assert port == SPEC["metricsPort"]
            return await super().running("127.0.0.1", ports[ip]) if ip in ports else None

    pods = FakePods(
        [
            WorkerPod("w-busy", "busy", {}),
            WorkerPod("w-idle", "idle", {DO_NOT_DISRUPT: "true", SAFE_TO_EVICT: "false"}),
            WorkerPod("w-unread", "nowhere", {DELETION_COST: "1000"}),
            WorkerPod("w-leaving", "busy", {}, deleting=True),
        ]
    )
    reader = PortPerPod(timeout_seconds=1)
    try:
        patch = await reconcile_once(pods, reader)
    finally:
        await reader.close()
        for runner in runners:
            await runner.cleanup()
    assert pods.pods["w-busy"].annotations == {
        DELETION_COST: str(BUSY_COST),
        SAFE_TO_EVICT: "false",
        DO_NOT_DISRUPT: "true",
    }
    assert pods.pods["w-idle"].annotations == {DELETION_COST: "0"}
    assert pods.pods["w-unread"].annotations == {DELETION_COST: "1000"}
    assert pods.pods["w-leaving"].annotations == {}
    assert patch.status["busyWorkers"] == 1
    # The scaling went on as before.
    assert patch.status["lastDecision"]["action"] in {"hold", "scale-down", "scale-up"}


async def test_a_marking_failure_does_not_stop_scaling():
    class Broken(FakePods):
        async def selector(self, namespace: str, deployment: str) -> str:
            raise RuntimeError("forbidden")

    class Never:
        async def running(self, ip: str, port: int) -> int | None:
            raise AssertionError("not reached")

    patch = await reconcile_once(Broken([]), Never())
    assert patch.status["error"] is None
    assert "busyWorkers" not in patch.status
