"""How many transcoder workers a queue needs: a pure function of what was observed.

Nothing here does I/O or reads the clock, so every rule is tested on its own
(`tests/test_decision.py`). The rules, in order:

1. The result is always within ``[min_replicas, max_replicas]``.
2. Work needs ``ceil((pending + in_flight) / jobs_per_replica)`` replicas.
3. Scaling up happens at once: a waiting job should not wait for a timer.
4. Scaling down waits until ``scale_down_cooldown`` has passed since the last
   change (up or down), so a queue that drains and refills does not flap.
   Only a replica count above ``max_replicas`` is corrected inside the cooldown.
5. Scaling down never goes below what the in-flight jobs need
   (``ceil(in_flight / jobs_per_replica)``, within the bounds). Which pod
   Kubernetes stops is its choice, not ours, so the worker itself must drain on
   SIGTERM: stop pulling, finish the running job or hand it back (nak).
6. When the consumer does not exist yet there is nothing to measure; at least
   one replica runs (within the bounds) because the worker is what creates it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    SCALE_UP = "scale-up"
    SCALE_DOWN = "scale-down"
    HOLD = "hold"


@dataclass(frozen=True)
class Policy:
    """The bounds of one TranscoderAutoscaler (its spec, validated)."""

    min_replicas: int
    max_replicas: int
    jobs_per_replica: int
    scale_down_cooldown: timedelta

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError("minReplicas must be 0 or more")
        if self.max_replicas < 1:
            raise ValueError("maxReplicas must be at least 1")
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})"
            )
        if self.jobs_per_replica < 1:
            raise ValueError("jobsPerReplica must be at least 1")
        if self.scale_down_cooldown < timedelta(0):
            raise ValueError("scaleDownCooldownSeconds must be 0 or more")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Policy:
        """The policy of a custom resource's spec (defaults as in the CRD)."""
        try:
            return cls(
                min_replicas=_integer(spec, "minReplicas", 0),
                max_replicas=_integer(spec, "maxReplicas", 1),
                jobs_per_replica=_integer(spec, "jobsPerReplica", 1),
                scale_down_cooldown=timedelta(
                    seconds=_integer(spec, "scaleDownCooldownSeconds", 300)
                ),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid spec: {exc}") from None

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))

    def replicas_for(self, jobs: int) -> int:
        return math.ceil(jobs / self.jobs_per_replica)


def _integer(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer, not {value!r}")
    return value


@dataclass(frozen=True)
class QueueLoad:
    """A consumer's work: ``pending`` not yet delivered, ``in_flight`` delivered
    and not yet acknowledged."""

    pending: int
    in_flight: int

    def __post_init__(self) -> None:
        if self.pending < 0 or self.in_flight < 0:
            raise ValueError("queue counts cannot be negative")

    @property
    def jobs(self) -> int:
        return self.pending + self.in_flight


@dataclass(frozen=True)
class Decision:
    replicas: int
    action: Action
    reason: str


def decide(
    *,
    load: QueueLoad | None,
    current: int,
    policy: Policy,
    last_scale: datetime | None,
    now: datetime,
) -> Decision:
    """The replica count for the next interval and why.

    ``load`` is None when the consumer does not exist (yet). ``last_scale`` is
    when the replica count was last changed by this autoscaler.
    """
    if current < 0:
        raise ValueError("current replicas cannot be negative")

    if load is None:
        target = policy.clamp(max(current, 1))
        return _towards(
            target,
            current,
            f"consumer not found: keeping {target} replica(s) so a worker can create it",
        )

    needed = policy.replicas_for(load.jobs)
    desired = policy.clamp(needed)
    work = f"{load.pending} pending + {load.in_flight} in flight"
    bounds = f"[{policy.min_replicas}, {policy.max_replicas}]"

    if desired > current:
        return Decision(
            desired,
            Action.SCALE_UP,
            f"{work} need {needed} replica(s); {desired} within {bounds}",
        )
    if desired == current:
        return Decision(current, Action.HOLD, f"{work}: {current} replica(s) is right")

    # desired < current: scaling down.
    remaining = _cooldown_left(policy, last_scale, now)
    if remaining > timedelta(0):
        if current > policy.max_replicas:
            return Decision(
                policy.max_replicas,
                Action.SCALE_DOWN,
                f"{current} replica(s) is above maxReplicas {policy.max_replicas}",
            )
        return Decision(
            current,
            Action.HOLD,
            f"{work} need {desired} replica(s), but the scale-down cooldown has "
            f"{math.ceil(remaining.total_seconds())}s left",
        )
    floor = policy.clamp(policy.replicas_for(load.in_flight))
    target = max(desired, floor)
    return Decision(
        target,
        Action.SCALE_DOWN,
        f"{work} need {needed} replica(s); {target} within {bounds}",
    )


def _towards(target: int, current: int, reason: str) -> Decision:
    if target > current:
        return Decision(target, Action.SCALE_UP, reason)
    if target < current:
        return Decision(target, Action.SCALE_DOWN, reason)
    return Decision(current, Action.HOLD, reason)


def _cooldown_left(policy: Policy, last_scale: datetime | None, now: datetime) -> timedelta:
    if last_scale is None:
        return timedelta(0)
    elapsed = now - last_scale
    # A last change in the future (clock skew) counts as just now.
    elapsed = max(elapsed, timedelta(0))
    return max(policy.scale_down_cooldown - elapsed, timedelta(0))
