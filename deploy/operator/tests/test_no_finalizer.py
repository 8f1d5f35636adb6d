"""The operator, really running (kopf and the Kubernetes client in a thread of
their own), against a fake API server with Kubernetes' finalizer rules
(fake_kube.py): it scales, it never puts a finalizer on a TranscoderAutoscaler, a
deleted one is gone at once and no longer scaled, and one that still carries
kopf's finalizer from an older operator is let go of."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import kopf
import pytest
from kubernetes_asyncio.config import kube_config

from studio_operator import handlers
from studio_operator.decision import QueueLoad
from studio_operator.settings import GROUP, PLURAL, VERSION

from .fake_kube import FakeKube
from .specs import autoscaler_spec

# kopf's default finalizer: what the operator's earlier kopf timer put on every
# TranscoderAutoscaler.
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
INTERVAL = 0.2
SPEC = autoscaler_spec(maxReplicas=8)


def test_kopf_still_finalizes_what_a_timer_watches():
    """The premise: a kopf timer (or daemon) makes kopf block deletion with its
    finalizer, which is why the operator has none."""
    registry = kopf.OperatorRegistry()

    @kopf.timer(GROUP, VERSION, PLURAL, interval=15, registry=registry)
    def tick(**_: object) -> None:  # pragma: no cover - never run
        pass

    (timer,) = registry._spawning.get_all_handlers()
    assert timer.requires_finalizer
    assert kopf.OperatorSettings().persistence.finalizer == KOPF_FINALIZER


def test_no_handler_of_the_operator_requires_a_finalizer():
    registry = kopf.get_default_registry()
    every = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._spawning.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    assert [h.fn for h in every] == [handlers.autoscalers]
    assert not [h for h in every if getattr(h, "requires_finalizer", None)]


class Load:
    """The queue, as the operator's NATS reader sees it; the test changes it."""

    def __init__(self) -> None:
        self.load = QueueLoad(pending=0, in_flight=0)

    async def read(self, nats_url: str, stream: str, consumer: str) -> QueueLoad | None:
        return self.load

    async def close(self) -> None:
        pass


@dataclasses.dataclass
class Operator:
    api: FakeKube
    load: Load


@pytest.fixture
async def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Operator]:
    api = FakeKube()
    await api.start()
    load = Load()
    monkeypatch.setattr(
        kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(api.kubeconfig(tmp_path / "kubeconfig"))
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(
        handlers, "SETTINGS", dataclasses.replace(handlers.SETTINGS, interval_seconds=INTERVAL)
    )
    monkeypatch.setattr(handlers, "JetStreamReader", lambda: load)
    yield Operator(api, load)
    await api.stop()


@pytest.fixture
def running() -> Iterator[Callable[[], threading.Thread]]:
    """Starts the operator in a thread (its own event loop, as `kopf run` has);
    stops it, through kopf's stop flag, at the end."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def start() -> threading.Thread:
        ready = threading.Event()

        def main() -> None:
            try:
                asyncio.run(
                    kopf.operator(
                        registry=kopf.get_default_registry(),
                        standalone=True,
                        clusterwide=False,
                        namespaces=["studio"],
                        stop_flag=stop,
                        ready_flag=ready,
                        memo=kopf.Memo(),
                    )
                )
            except BaseException as exc:  # reported by the test, not lost in the thread
                errors.append(exc)

        thread = threading.Thread(target=main, name="operator", daemon=True)
        thread.start()
        threads.append(thread)
        assert ready.wait(20), "the operator did not start"
        return thread

    yield start
    stop.set()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive(), "the operator did not stop"
    assert not errors, errors


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 15.0
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def test_scales_without_a_finalizer_and_a_deleted_autoscaler_is_not_scaled_again(
    operator: Operator, running: Callable[[], threading.Thread]
):
    api, load = operator.api, operator.load
    load.load = QueueLoad(pending=3, in_flight=0)
    running()
    await api.create("studio-transcoder-worker", SPEC)

    await until(lambda: api.replicas == 3, "the workers scale to the queue")
    await until(
        lambda: (api.objects["studio-transcoder-worker"].get("status") or {}).get("replicas") == 3,
        "the status says so",
    )
    first = api.status_patches[0][2]
    assert (first["lastDecision"]["action"], first["replicas"]) == ("scale-up", 3)
    # A merge patch: the error, None, is no field at all.
    assert "error" not in api.objects["studio-transcoder-worker"]["status"]

    # More work keeps being followed, tick after tick.
    load.load = QueueLoad(pending=5, in_flight=1)
    await until(lambda: api.replicas == 6, "the workers follow the queue")

    await api.delete("studio-transcoder-worker")
    # No finalizer: gone at once, operator running or not.
    assert "studio-transcoder-worker" not in api.objects
    deleted_at = time.monotonic()
    load.load = QueueLoad(pending=1, in_flight=0)
    await asyncio.sleep(6 * INTERVAL)
    assert api.replicas == 6
    assert [p for p in api.scale_patches if p.at > deleted_at + INTERVAL] == []
    assert [p for p in api.status_patches if p[0] > deleted_at + INTERVAL] == []

    assert api.finalizers_stored == []
    assert api.rejected == []
    assert not [u for u in api.unknown if "transcoderautoscalers" in u]


async def test_a_finalizer_left_by_an_older_operator_is_removed(
    operator: Operator, running: Callable[[], threading.Thread]
):
    """The upgrade path: an autoscaler created under a kopf timer still carries
    kopf's finalizer; the new operator needs none, and kopf removes it."""
    api = operator.api
    other = "example.com/keep-me"
    await api.create("legacy", SPEC, finalizers=[KOPF_FINALIZER, other])
    running()
    await until(lambda: api.finalizers("legacy") == [other], "kopf's finalizer is removed")
    # Another controller's finalizer is left alone; the object, once deleted, is
    # Terminating for that controller only and no longer scaled.
    await api.delete("legacy")
    assert api.objects["legacy"]["metadata"]["deletionTimestamp"]
    await asyncio.sleep(3 * INTERVAL)
    deleted_at = time.monotonic()
    await asyncio.sleep(6 * INTERVAL)
    assert [p for p in api.status_patches if p[0] > deleted_at] == []
    assert [f for _, fs in api.finalizers_stored for f in fs if f == KOPF_FINALIZER] == [
        KOPF_FINALIZER
    ]  # only the one this test put there
