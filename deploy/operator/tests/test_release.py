"""The chart's pre-delete hook (`python -m studio_operator release`) against a
fake API server that behaves like Kubernetes with finalizers: a deleted object
stays (Terminating) until its last finalizer is gone."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from studio_operator.__main__ import main
from studio_operator.release import KOPF_FINALIZER, release

OTHER = "example.com/keep-me"


@dataclass
class Obj:
    finalizers: list[str]
    deleting: bool = False


@dataclass
class FakeApi:
    objects: dict[str, Obj]
    # The operator: removes its finalizer from a Terminating object after this
    # many polls; None when it is not running.
    operator_after_polls: int | None = 2
    polls: int = 0
    calls: list[str] = field(default_factory=list)

    async def list_names(self, namespace: str) -> list[str]:
        self.calls.append(f"list {namespace}")
        return sorted(self.objects)

    async def delete(self, namespace: str, name: str) -> None:
        self.calls.append(f"delete {name}")
        if name in self.objects:
            self.objects[name].deleting = True
            self._collect(name)

    async def finalizers(self, namespace: str, name: str) -> list[str] | None:
        self.polls += 1
        obj = self.objects.get(name)
        if obj is None:
            return None
        if (
            obj.deleting
            and self.operator_after_polls is not None
            and self.polls >= self.operator_after_polls
        ):
            obj.finalizers = [f for f in obj.finalizers if f != KOPF_FINALIZER]
            self._collect(name)
            return await self.finalizers(namespace, name)
        return list(obj.finalizers)

    async def set_finalizers(self, namespace: str, name: str, finalizers: list[str]) -> None:
        self.calls.append(f"patch {name} {finalizers}")
        self.objects[name].finalizers = finalizers
        self._collect(name)

    def _collect(self, name: str) -> None:
        obj = self.objects[name]
        if obj.deleting and not obj.finalizers:
            del self.objects[name]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_the_running_operator_lets_go_and_nothing_is_forced():
    api = FakeApi({"studio-transcoder-worker": Obj([KOPF_FINALIZER])}, operator_after_polls=3)
    clock = Clock()
    report = await release(api, "studio", wait_seconds=30, sleep=clock.sleep, clock=clock)
    assert report.deleted == ["studio-transcoder-worker"]
    assert report.released == ["studio-transcoder-worker"]
    assert report.forced == []
    assert api.objects == {}
    assert not [c for c in api.calls if c.startswith("patch")]


async def test_without_the_operator_its_finalizer_is_removed_after_the_wait():
    api = FakeApi(
        {"a": Obj([KOPF_FINALIZER]), "b": Obj([KOPF_FINALIZER, OTHER])},
        operator_after_polls=None,
    )
    clock = Clock()
    report = await release(api, "studio", wait_seconds=10, sleep=clock.sleep, clock=clock)
    assert clock.now >= 10
    assert report.forced == ["a", "b"]
    # Gone, except the one another controller still holds: its finalizer stays.
    assert set(api.objects) == {"b"}
    assert api.objects["b"].finalizers == [OTHER]
    assert api.objects["b"].deleting


async def test_nothing_to_release():
    api = FakeApi({})
    report = await release(api, "studio", wait_seconds=10)
    assert (report.deleted, report.released, report.forced) == ([], [], [])


async def test_an_object_without_the_finalizer_is_just_deleted():
    api = FakeApi({"plain": Obj([])}, operator_after_polls=None)
    clock = Clock()
    report = await release(api, "studio", wait_seconds=10, sleep=clock.sleep, clock=clock)
    assert report.released == ["plain"]
    assert api.objects == {}
    assert clock.now == 0


def test_the_command_line_knows_release_and_nothing_else(capsys: pytest.CaptureFixture[str]):
    assert main(["bogus"]) == 2
    assert "release" in capsys.readouterr().err


def test_kopf_timers_do_put_a_finalizer():
    """Why the hook exists: the autoscaler's timer makes kopf block deletion."""
    import kopf

    from studio_operator import handlers  # registers the timer

    registry = kopf.get_default_registry()
    timers = [h for h in registry._spawning.get_all_handlers() if "autoscale" in str(h.id)]
    assert timers
    assert all(h.requires_finalizer for h in timers)
    assert handlers.autoscale
