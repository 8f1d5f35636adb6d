"""The autoscaling loop's evaluation: fake scale and status clients, fake or real
queue reader; the kopf handlers that feed it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import kopf
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from studio_operator import handlers
from studio_operator.autoscaling import Autoscaler, Autoscaling
from studio_operator.decision import QueueLoad
from studio_operator.jetstream import JetStreamReader, QueueReadError
from studio_operator.kube import TargetNotFound
from studio_operator.settings import GROUP, PLURAL, VERSION

from .specs import autoscaler_spec

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test")

SPEC = autoscaler_spec(scaleDownCooldownSeconds=300)


class FakeScaler:
    def __init__(self, replicas: int | None) -> None:
        self.replicas = replicas
        self.patches: list[tuple[str, str, int]] = []
        self.fail_patch: Exception | None = None

    async def get_replicas(self, namespace: str, name: str) -> int:
        if self.replicas is None:
            raise TargetNotFound(f"deployment {namespace}/{name} not found")
        return self.replicas

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        if self.fail_patch is not None:
            raise self.fail_patch
        self.patches.append((namespace, name, replicas))
        self.replicas = replicas


class FakeReader:
    def __init__(self, load: QueueLoad | Exception | None, **others: QueueLoad | None) -> None:
        self.load = load
        self.others = others
        self.calls: list[tuple[str, str, str]] = []

    async def read(self, nats_url: str, stream: str, consumer: str) -> QueueLoad | None:
        self.calls.append((nats_url, stream, consumer))
        if consumer in self.others:
            return self.others[consumer]
        if isinstance(self.load, Exception):
            raise self.load
        return self.load


class FakeStatuses:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict]] = []

    async def patch_status(self, namespace: str, name: str, status) -> None:
        self.patches.append((namespace, name, dict(status)))


async def tick(reader, scaler, *, spec=None, status=None, now=NOW) -> kopf.Patch:
    """One evaluation; returns what it wrote, as {"status": ...}."""
    statuses = FakeStatuses()
    loop = Autoscaling(reader=reader, scaler=scaler, statuses=statuses, clock=lambda: now)
    autoscaler = Autoscaler(
        "studio", "studio-transcoder-worker", "uid-1", spec or SPEC, status or {}
    )
    await loop.evaluate(autoscaler)
    ((namespace, name, written),) = statuses.patches
    assert (namespace, name) == ("studio", "studio-transcoder-worker")
    return kopf.Patch({"status": written})


def test_the_autoscalers_are_indexed_and_nothing_else_is_registered_for_them():
    """One index handler for the custom resource; no timer, daemon or change handler,
    each of which would bring kopf's finalizer."""
    registry = kopf.get_default_registry()
    indexers = [h for h in registry._indexing.get_all_handlers() if h.fn is handlers.autoscalers]
    assert len(indexers) == 1
    selector = indexers[0].selector
    assert (selector.group, selector.version, selector.any_name) == (GROUP, VERSION, PLURAL)
    for handlers_of_kind in (registry._spawning, registry._changing, registry._watching):
        assert list(handlers_of_kind.get_all_handlers()) == []


def test_the_index_copies_the_object_and_skips_one_being_deleted():
    spec = {**SPEC, "additionalConsumers": ["retries"]}
    value = handlers.autoscalers(
        namespace="studio", name="w", uid="u-1", spec=spec, status={"replicas": 2}
    )
    autoscaler = value[("studio", "w")]
    assert autoscaler == Autoscaler("studio", "w", "u-1", spec, {"replicas": 2})
    spec["additionalConsumers"].append("changed")
    assert autoscaler.spec["additionalConsumers"] == ["retries"]
    assert handlers._live(meta={})
    assert not handlers._live(meta={"deletionTimestamp": "2026-12-06T12:00:00Z"})


async def test_waiting_jobs_scale_the_deployment_up_and_the_status_says_why():
    reader, scaler = FakeReader(QueueLoad(pending=3, in_flight=1)), FakeScaler(1)
    patch = await tick(reader, scaler)

    assert reader.calls == [
        ("nats://nats:4222", "STUDIO", "transcoder-worker-catalog-episode-uploaded")
    ]
    assert scaler.patches == [("studio", "studio-transcoder-worker", 4)]
    status = patch["status"]
    assert status["replicas"] == 4
    assert (status["pending"], status["inFlight"]) == (3, 1)
    assert status["lastScaleTime"] == "2026-11-26T12:00:00Z"
    assert status["lastDecision"]["action"] == "scale-up"
    assert status["lastDecision"]["fromReplicas"] == 1
    assert status["lastDecision"]["toReplicas"] == 4
    assert "3 pending + 1 in flight" in status["lastDecision"]["reason"]
    assert status["error"] is None


async def test_the_cooldown_is_read_back_from_the_status():
    scaler = FakeScaler(4)
    recent = {"lastScaleTime": "2026-11-26T11:58:00Z"}
    patch = await tick(FakeReader(QueueLoad(0, 0)), scaler, status=recent)
    assert scaler.patches == []
    assert patch["status"]["lastDecision"]["action"] == "hold"
    assert "cooldown has 180s left" in patch["status"]["lastDecision"]["reason"]
    # The last change is kept, not moved by a decision that changed nothing.
    assert patch["status"]["lastScaleTime"] == "2026-11-26T11:58:00Z"

    later = NOW + timedelta(minutes=4)
    patch = await tick(FakeReader(QueueLoad(0, 0)), scaler, status=recent, now=later)
    assert scaler.patches == [("studio", "studio-transcoder-worker", 0)]
    assert patch["status"]["lastDecision"]["action"] == "scale-down"


async def test_unreadable_queue_leaves_the_replicas_alone():
    scaler = FakeScaler(2)
    patch = await tick(FakeReader(QueueReadError("cannot connect to nats://nats:4222")), scaler)
    assert scaler.patches == []
    assert patch["status"]["replicas"] == 2
    assert patch["status"]["lastDecision"]["action"] == "error"
    assert "cannot connect" in patch["status"]["error"]


async def test_a_missing_deployment_is_reported():
    reader = FakeReader(QueueLoad(5, 0))
    patch = await tick(reader, FakeScaler(None))
    assert "studio/studio-transcoder-worker not found" in patch["status"]["error"]
    assert reader.calls == []


async def test_a_failed_scale_patch_is_reported():
    scaler = FakeScaler(0)
    scaler.fail_patch = RuntimeError("forbidden")
    patch = await tick(FakeReader(QueueLoad(2, 0)), scaler)
    error = patch["status"]["error"]
    assert error == "scaling studio-transcoder-worker to 2: RuntimeError: forbidden"
    assert "lastScaleTime" not in patch["status"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"maxReplicas": 0}, "maxReplicas must be at least 1"),
        ({"minReplicas": 9}, "above maxReplicas"),
        ({"natsUrl": None}, "missing 'natsUrl'"),
        ({"targetDeployment": ""}, "targetDeployment is empty"),
    ],
)
async def test_an_invalid_spec_is_reported_and_nothing_is_touched(change, message):
    spec = {**SPEC, **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    reader, scaler = FakeReader(QueueLoad(5, 0)), FakeScaler(1)
    patch = await tick(reader, scaler, spec=spec)
    assert message in patch["status"]["error"]
    assert reader.calls == []
    assert scaler.patches == []


async def test_a_missing_consumer_keeps_one_worker():
    scaler = FakeScaler(0)
    patch = await tick(FakeReader(None), scaler)
    assert scaler.patches == [("studio", "studio-transcoder-worker", 1)]
    assert patch["status"]["pending"] is None
    assert "consumer not found" in patch["status"]["lastDecision"]["reason"]


async def test_additional_consumers_add_up():
    spec = {**SPEC, "additionalConsumers": ["retries", "gone"]}
    reader = FakeReader(QueueLoad(2, 1), retries=QueueLoad(1, 1), gone=None)
    scaler = FakeScaler(0)
    patch = await tick(reader, scaler, spec=spec)
    assert [c for _, _, c in reader.calls] == [SPEC["consumer"], "retries", "gone"]
    assert (patch["status"]["pending"], patch["status"]["inFlight"]) == (3, 2)
    assert scaler.patches == [("studio", "studio-transcoder-worker", 5)]


async def test_against_real_jetstream(nats_url):
    """The real reader: six jobs published, two taken and running → 6 replicas."""
    suffix = uuid.uuid4().hex[:10]
    stream, subject = f"OPTEST_{suffix}", f"optest.{suffix}.jobs"
    nc = await nats.connect(nats_url)
    js = nc.jetstream(timeout=10)
    await js.add_stream(name=stream, subjects=[subject])
    await js.add_consumer(
        stream, ConsumerConfig(durable_name="workers", ack_policy=AckPolicy.EXPLICIT)
    )
    reader = JetStreamReader()
    try:
        for i in range(6):
            await js.publish(subject, str(i).encode())
        sub = await js.pull_subscribe_bind("workers", stream)
        assert len(await sub.fetch(2, timeout=10)) == 2

        scaler = FakeScaler(1)
        spec = {**SPEC, "natsUrl": nats_url, "stream": stream, "consumer": "workers"}
        spec["maxReplicas"] = 10
        patch = await tick(reader, scaler, spec=spec)
        assert scaler.patches == [("studio", "studio-transcoder-worker", 6)]
        assert (patch["status"]["pending"], patch["status"]["inFlight"]) == (4, 2)
        await sub.unsubscribe()
    finally:
        await reader.close()
        await js.delete_stream(stream)
        await nc.close()


async def test_startup_declares_the_namespaced_restricted_mode(monkeypatch):
    class Connected:
        closed = False
        api_client = None

        async def close(self) -> None:
            Connected.closed = True

    async def connect() -> Connected:
        return Connected()

    monkeypatch.setattr(handlers.KubernetesScaler, "connect", staticmethod(connect))
    settings = kopf.OperatorSettings()
    memo = kopf.Memo()
    await handlers.configure(settings=settings, memo=memo, autoscalers={}, logger=LOG)
    assert settings.scanning.disabled is True
    assert settings.peering.standalone is True
    assert isinstance(memo.reader, JetStreamReader)
    # Busy workers are marked through the same API client.
    assert isinstance(memo.pods, handlers.KubernetesPods)
    assert isinstance(memo.running, handlers.HttpRunningReader)

    # The loop runs until the operator stops.
    assert not memo.autoscaling_task.done()

    await handlers.close(memo=memo, logger=LOG)
    assert Connected.closed
    assert memo.autoscaling_task.cancelled()


async def test_one_tick_evaluates_every_autoscaler_and_writes_each_status():
    statuses = FakeStatuses()
    scaler = FakeScaler(1)
    loop = Autoscaling(
        reader=FakeReader(QueueLoad(2, 0)), scaler=scaler, statuses=statuses, clock=lambda: NOW
    )
    broken = {**SPEC, "maxReplicas": 0}
    decisions = await loop.tick(
        [Autoscaler("studio", "a", "u-a", SPEC), Autoscaler("studio", "b", "u-b", broken)]
    )
    assert decisions[("studio", "a")] is not None
    assert decisions[("studio", "b")] is None  # its error is in its own status
    assert [(n, s["error"]) for _, n, s in statuses.patches] == [
        ("a", None),
        ("b", "invalid spec: maxReplicas must be at least 1"),
    ]
    assert loop.last_tick == NOW


async def test_the_cooldown_counts_from_the_last_change_even_before_the_index_shows_it():
    """The status written at a scale-up reaches the index by a watch event; a tick
    that comes first must not scale down as if nothing had changed."""
    clock = [NOW]
    statuses, scaler = FakeStatuses(), FakeScaler(1)
    reader = FakeReader(QueueLoad(3, 0))
    loop = Autoscaling(reader=reader, scaler=scaler, statuses=statuses, clock=lambda: clock[0])
    stale = Autoscaler("studio", "w", "u-1", SPEC, {})
    await loop.tick([stale])
    assert scaler.replicas == 3
    reader.load = QueueLoad(0, 0)
    clock[0] = NOW + timedelta(seconds=30)
    await loop.tick([stale])  # the index still shows the empty status
    assert scaler.replicas == 3
    assert statuses.patches[-1][2]["lastDecision"]["action"] == "hold"
    # An object that left the index is forgotten.
    await loop.tick([])
    assert loop._written == {}


async def test_a_failed_status_write_does_not_stop_the_loop():
    class Refusing(FakeStatuses):
        async def patch_status(self, namespace: str, name: str, status) -> None:
            raise RuntimeError("forbidden")

    scaler = FakeScaler(0)
    loop = Autoscaling(
        reader=FakeReader(QueueLoad(1, 0)), scaler=scaler, statuses=Refusing(), clock=lambda: NOW
    )
    decisions = await loop.tick([Autoscaler("studio", "w", "u-1", SPEC)])
    assert decisions[("studio", "w")] is not None
    assert scaler.replicas == 1


async def test_the_loop_ticks_until_cancelled_and_survives_a_failing_tick():
    seen: list[int] = []

    def autoscalers():
        seen.append(len(seen))
        if len(seen) == 2:
            raise RuntimeError("the index is gone")
        return []

    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) > 4:
            raise asyncio.CancelledError

    loop = Autoscaling(reader=FakeReader(None), scaler=FakeScaler(0), statuses=FakeStatuses())
    with pytest.raises(asyncio.CancelledError):
        await loop.run(autoscalers, interval=5, initial_delay=1, sleep=sleep)
    assert sleeps == [1, 5, 5, 5, 5]
    assert seen == [0, 1, 2, 3]


async def test_the_liveness_probe_fails_once_the_loop_stops_or_stalls(monkeypatch):
    clock = [NOW]
    loop = Autoscaling(
        reader=FakeReader(None),
        scaler=FakeScaler(0),
        statuses=FakeStatuses(),
        clock=lambda: clock[0],
    )
    never = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(never)
    memo = kopf.Memo(autoscaling=loop, autoscaling_task=task)
    assert handlers.alive(memo=memo) is None  # started, no tick yet
    await loop.tick([])
    assert handlers.alive(memo=memo) == NOW.isoformat()
    clock[0] = NOW + timedelta(minutes=10)
    with pytest.raises(RuntimeError, match="no autoscaling tick since"):
        handlers.alive(memo=memo)
    clock[0] = NOW
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(RuntimeError, match="has stopped"):
        handlers.alive(memo=memo)
