"""The kopf timer called directly: fake scale client, fake or real queue reader."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import kopf
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from studio_operator import handlers
from studio_operator.decision import QueueLoad
from studio_operator.jetstream import JetStreamReader, QueueReadError
from studio_operator.kube import TargetNotFound
from studio_operator.settings import GROUP, PLURAL, VERSION

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test")

SPEC = {
    "targetDeployment": "studio-transcoder-worker",
    "natsUrl": "nats://nats:4222",
    "stream": "STUDIO",
    "consumer": "transcoder-worker-catalog-episode-uploaded",
    "minReplicas": 0,
    "maxReplicas": 5,
    "jobsPerReplica": 1,
    "scaleDownCooldownSeconds": 300,
}


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


async def tick(reader, scaler, *, spec=None, status=None, now=NOW) -> kopf.Patch:
    patch = kopf.Patch()
    memo = kopf.Memo(reader=reader, scaler=scaler, clock=lambda: now)
    await handlers.autoscale(
        spec=spec or SPEC,
        status=status or {},
        namespace="studio",
        patch=patch,
        memo=memo,
        logger=LOG,
    )
    return patch


def test_the_timer_is_registered_for_the_custom_resource():
    registry = kopf.get_default_registry()
    timers = [
        h
        for h in registry._spawning.get_all_handlers()
        if getattr(h, "fn", None) is handlers.autoscale
    ]
    assert len(timers) == 1
    selector = timers[0].selector
    assert (selector.group, selector.version, selector.any_name) == (GROUP, VERSION, PLURAL)
    assert timers[0].interval == handlers.SETTINGS.interval_seconds


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
    await handlers.configure(settings=settings, memo=memo, logger=LOG)
    assert settings.scanning.disabled is True
    assert settings.peering.standalone is True
    assert isinstance(memo.reader, JetStreamReader)
    # Busy workers are marked through the same API client.
    assert isinstance(memo.pods, handlers.KubernetesPods)
    assert isinstance(memo.running, handlers.HttpRunningReader)

    await handlers.close(memo=memo, logger=LOG)
    assert Connected.closed
