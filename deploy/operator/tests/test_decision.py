"""The scaling decision: examples first, then the rules as properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio_operator.decision import Action, Policy, QueueLoad, decide

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(seconds=300)


def policy(lo: int = 0, hi: int = 10, per: int = 1, cooldown: timedelta = COOLDOWN) -> Policy:
    return Policy(
        min_replicas=lo, max_replicas=hi, jobs_per_replica=per, scale_down_cooldown=cooldown
    )


def run(
    pending: int,
    in_flight: int,
    current: int,
    pol: Policy | None = None,
    last_scale: datetime | None = None,
):
    return decide(
        load=QueueLoad(pending, in_flight),
        current=current,
        policy=pol or policy(),
        last_scale=last_scale,
        now=NOW,
    )


# --- examples ---------------------------------------------------------------


def test_an_idle_queue_rests_at_the_minimum():
    decision = run(0, 0, 0, policy(lo=0))
    assert (decision.replicas, decision.action) == (0, Action.HOLD)
    assert run(0, 0, 0, policy(lo=2)).replicas == 2


def test_waiting_jobs_scale_up_at_once_even_right_after_a_change():
    decision = run(5, 0, 1, policy(per=1), last_scale=NOW - timedelta(seconds=1))
    assert (decision.replicas, decision.action) == (5, Action.SCALE_UP)
    assert "5 pending + 0 in flight" in decision.reason


def test_jobs_per_replica_rounds_up():
    assert run(5, 0, 0, policy(per=2)).replicas == 3
    assert run(4, 0, 0, policy(per=2)).replicas == 2
    assert run(1, 0, 0, policy(per=4)).replicas == 1


def test_in_flight_jobs_count_as_work():
    assert run(0, 3, 0, policy(per=1)).replicas == 3
    assert run(2, 3, 1, policy(per=1)).replicas == 5


def test_scale_up_stops_at_max():
    decision = run(100, 0, 2, policy(hi=4))
    assert decision.replicas == 4
    assert "[0, 4]" in decision.reason


def test_no_scale_down_inside_the_cooldown():
    decision = run(0, 0, 4, last_scale=NOW - timedelta(seconds=100))
    assert (decision.replicas, decision.action) == (4, Action.HOLD)
    assert "cooldown has 200s left" in decision.reason


def test_scale_down_after_the_cooldown():
    decision = run(1, 0, 4, last_scale=NOW - COOLDOWN)
    assert (decision.replicas, decision.action) == (1, Action.SCALE_DOWN)


def test_scale_down_with_no_recorded_change_is_immediate():
    assert run(0, 0, 3, policy(lo=1)).replicas == 1


def test_scale_down_keeps_what_in_flight_jobs_need():
    decision = run(0, 3, 6, policy(per=1), last_scale=None)
    assert decision.replicas == 3


def test_above_max_is_corrected_even_inside_the_cooldown():
    decision = run(50, 0, 12, policy(hi=8), last_scale=NOW)
    assert (decision.replicas, decision.action) == (8, Action.SCALE_DOWN)
    assert "above maxReplicas 8" in decision.reason


def test_below_min_is_raised():
    decision = run(0, 0, 0, policy(lo=2), last_scale=NOW)
    assert (decision.replicas, decision.action) == (2, Action.SCALE_UP)


def test_a_last_change_in_the_future_counts_as_now():
    decision = run(0, 0, 3, last_scale=NOW + timedelta(hours=1))
    assert decision.action is Action.HOLD


def test_a_missing_consumer_keeps_one_worker_to_create_it():
    pol = policy(lo=0, hi=5)
    for current, expected in [(0, 1), (1, 1), (3, 3), (9, 5)]:
        decision = decide(load=None, current=current, policy=pol, last_scale=None, now=NOW)
        assert decision.replicas == expected
        assert "consumer not found" in decision.reason
    only_zero = policy(lo=0, hi=1)
    assert decide(load=None, current=0, policy=only_zero, last_scale=None, now=NOW).replicas == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"minReplicas": 3, "maxReplicas": 2}, "above maxReplicas"),
        ({"maxReplicas": 0}, "at least 1"),
        ({"minReplicas": -1}, "0 or more"),
        ({"jobsPerReplica": 0}, "at least 1"),
        ({"scaleDownCooldownSeconds": -5}, "0 or more"),
        ({"maxReplicas": "3"}, "must be an integer"),
        ({"maxReplicas": True}, "must be an integer"),
    ],
)
def test_policy_from_spec_rejects_nonsense(spec, message):
    with pytest.raises(ValueError, match=message):
        Policy.from_spec(spec)


def test_policy_from_spec_reads_every_field():
    pol = Policy.from_spec(
        {"minReplicas": 1, "maxReplicas": 7, "jobsPerReplica": 2, "scaleDownCooldownSeconds": 60}
    )
    assert pol == policy(lo=1, hi=7, per=2, cooldown=timedelta(seconds=60))


def test_negative_inputs_are_refused():
    with pytest.raises(ValueError, match="cannot be negative"):
        QueueLoad(-1, 0)
    with pytest.raises(ValueError, match="cannot be negative"):
        run(0, 0, -1)


# --- the rules as properties ----------------------------------------------------


@st.composite
def scenarios(draw):
    lo = draw(st.integers(0, 20))
    hi = draw(st.integers(max(lo, 1), 40))
    pol = policy(
        lo=lo,
        hi=hi,
        per=draw(st.integers(1, 8)),
        cooldown=timedelta(seconds=draw(st.integers(0, 3600))),
    )
    load = draw(
        st.one_of(st.none(), st.builds(QueueLoad, st.integers(0, 500), st.integers(0, 200)))
    )
    current = draw(st.integers(0, 60))
    last_scale = draw(
        st.one_of(st.none(), st.integers(-600, 7200).map(lambda s: NOW - timedelta(seconds=s)))
    )
    return pol, load, current, last_scale


def in_cooldown(pol: Policy, last_scale: datetime | None) -> bool:
    # A last change in the future counts as just now.
    return last_scale is not None and max(NOW - last_scale, timedelta(0)) < pol.scale_down_cooldown


@settings(max_examples=3000, deadline=None, database=None)
@given(scenarios())
def test_properties(scenario):
    pol, load, current, last_scale = scenario
    decision = decide(load=load, current=current, policy=pol, last_scale=last_scale, now=NOW)
    r = decision.replicas

    # Bounds are always respected.
    assert pol.min_replicas <= r <= pol.max_replicas

    # The action names what happened.
    expected_action = (
        Action.SCALE_UP if r > current else Action.SCALE_DOWN if r < current else Action.HOLD
    )
    assert decision.action is expected_action
    assert decision.reason

    # Inside the cooldown nothing scales down, except to come back under max.
    if in_cooldown(pol, last_scale) and r < current:
        assert r == pol.max_replicas < current

    if load is None:
        assert r == pol.clamp(max(current, 1))
        return

    needed = math.ceil(load.jobs / pol.jobs_per_replica)
    # Never below what the in-flight jobs need (as far as max allows).
    if r < current:
        assert r >= min(math.ceil(load.in_flight / pol.jobs_per_replica), pol.max_replicas)
    # Scaling up is immediate, whatever the cooldown says.
    if pol.clamp(needed) > current:
        assert r == pol.clamp(needed)
    # Out of the cooldown the decision is exactly what the work needs.
    if not in_cooldown(pol, last_scale):
        assert r == pol.clamp(needed)


@settings(max_examples=500, deadline=None, database=None)
@given(scenarios())
def test_a_decision_is_stable(scenario):
    """Applying a decision and asking again (same queue, same moment) changes nothing."""
    pol, load, current, last_scale = scenario
    first = decide(load=load, current=current, policy=pol, last_scale=last_scale, now=NOW)
    changed = first.replicas != current
    again = decide(
        load=load,
        current=first.replicas,
        policy=pol,
        last_scale=NOW if changed else last_scale,
        now=NOW,
    )
    assert again.replicas == first.replicas
    assert again.action is Action.HOLD
