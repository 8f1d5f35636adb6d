"""The dashboard's queries aggregate per-replica gauges correctly: a value every
replica of a service reports alike (from the shared database, stream or outbox)
is taken with max/avg, since a sum would count it once per replica (2 to 8 times with
production's replicas); a per-process gauge (one worker's own running jobs) is
summed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from .conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "studio-overview.json"
# Reported alike by every replica of their service.
SHARED_GAUGES = {
    "transcoder_jobs",
    "consumer_pending_messages",
    "consumer_ack_pending_messages",
    "outbox_lag_seconds",
}
# Each process's own.
OWN_GAUGES = {"transcoder_jobs_running"}
_AGGREGATE = re.compile(r"\b(sum|max|min|avg|count)\s*(?:by\s*\([^)]*\)\s*)?\(\s*([a-z_]+)\b")


def expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def test_shared_gauges_are_never_summed_and_own_gauges_are():
    exprs = list(expressions(json.loads(DASHBOARD.read_text(encoding="utf-8"))))
    seen: dict[str, set[str]] = {}
    for expr in exprs:
        for function, metric in _AGGREGATE.findall(expr):
            seen.setdefault(metric, set()).add(function)
        for metric in SHARED_GAUGES | OWN_GAUGES:
            # Every use of these gauges is inside an aggregation.
            if re.search(rf"\b{metric}\b(?!_)", expr):
                assert re.search(rf"\(\s*{metric}\b", expr), expr
    for metric in SHARED_GAUGES:
        assert metric in seen, metric
        assert seen[metric] <= {"max", "avg", "min"}, (metric, seen[metric])
    for metric in OWN_GAUGES:
        assert seen[metric] == {"sum"}, metric
