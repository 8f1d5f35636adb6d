"""Every metric the Grafana dashboard queries is exposed by some process's /metrics.

The five APIs run in process and the transcoder worker beside them; their
/metrics (the worker's registry) are scraped after the periodic gauges had a
chance to refresh.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from studio_common.migrations import upgrade
from studio_common.testing.plugin import serve_app

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "studio-overview.json"
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]


def dashboard_expressions() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in data["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for variable in data["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(re.sub(r"^label_values\((.*),[^,]*\)$", r"\1", query["query"]))
    return exprs


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, labels or ranges)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function
        names.add(match.group())
    return names


def exposed_names(text: str) -> set[str]:
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_metric_names_are_read_from_expressions() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (service, route, le) (rate(http_server_request_duration_"
        'seconds_bucket{service=~"$service"}[$__rate_interval])))'
    )
    assert metric_names(expr) == {"http_server_request_duration_seconds_bucket"}
    assert metric_names('sum(transcoder_jobs{status="queued"}) / sum(x_total)') == {
        "transcoder_jobs",
        "x_total",
    }


async def test_every_dashboard_metric_is_exposed(
    service_settings: dict[str, Any],
    event_namespaces: Any,
    s3_endpoint_url: str,
    tmp_path: Path,
    create_service_app: Callable[..., Any],
) -> None:
    ns = event_namespaces.new()
    common = {
        **service_settings,
        **event_namespaces.settings(ns),
        "s3_endpoint_url": s3_endpoint_url,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test-secret",
        "metrics_refresh_seconds": 0.2,
    }
    for name in SERVICES:
        upgrade(ROOT / "services" / name, common["database_url"])

    from studio_transcoder.config import TranscoderSettings
    from studio_transcoder.worker import Worker

    texts: dict[str, str] = {}
    worker = Worker(
        TranscoderSettings(
            **common,
            worker_metrics_port=0,
            worker_fetch_timeout_seconds=0.5,
            jobs_gauge_refresh_seconds=0.2,
            work_dir=str(tmp_path),
        )
    )
    async with AsyncExitStack() as stack:
        clients = {}
        for name in SERVICES:
            extra: dict[str, Any] = {
                "transcoder": {"jobs_gauge_refresh_seconds": 0.2},
                # Required outside development.
                "media": {
                    "playback_signing_key": "dashboard-playback-signing-key-0123456789ab",
                    "public_base_url": "http://media.test",
                },
            }.get(name, {})
            app = create_service_app(name, **common, **extra)
            clients[name] = await stack.enter_async_context(serve_app(app))
        await worker.start()
        stack.push_async_callback(worker.stop, 0)
        for client in clients.values():
            await client.get("/api/does-not-exist")  # a request, so the histogram has samples
        await asyncio.sleep(1.0)  # the gauges refresh every 0.2 s
        for name, client in clients.items():
            texts[name] = (await client.get("/metrics")).text
        texts["transcoder-worker"] = generate_latest(worker.registry).decode()

    exposed = set().union(*(exposed_names(t) for t in texts.values()))
    wanted = set().union(*(metric_names(e) for e in dashboard_expressions()))
    assert wanted, "the dashboard queries no metric"
    assert wanted <= exposed, f"queried but exposed nowhere: {sorted(wanted - exposed)}"

    # The refreshed gauges carry values: lag per relay, pending per durable consumer.
    assert re.search(r'^outbox_lag_seconds\{service="catalog"\} ', texts["catalog"], re.M)
    assert re.search(
        r'^consumer_pending_messages\{consumer="catalog-transcoder-transcode-completed",'
        r'service="catalog"\} ',
        texts["catalog"],
        re.M,
    )
    assert re.search(
        r'^consumer_pending_messages\{consumer="transcoder-worker-catalog-episode-uploaded",'
        r'service="transcoder-worker"\} ',
        texts["transcoder-worker"],
        re.M,
    )
    assert re.search(r'^transcoder_jobs\{status="queued"\} ', texts["transcoder"], re.M)
