"""The connection budget: every process of the production chart at its
autoscaling ceiling, each with its pools full, fits Postgres' max_connections.

Each process's settings are built from what the chart gives its container (the
shared ConfigMap and its own plain env), exactly as the process would read
them; ``database_connections()`` (``worker_database_connections()`` for the
transcoder worker) says how many connections that process opens at most.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from studio_common.settings import ServiceSettings
from studio_transcoder.config import TranscoderSettings

from .conftest import RELEASE, Manifests, of_kind

SERVICES = ("catalog", "identity", "media", "transcoder", "playback")


def settings_class(service: str) -> type[ServiceSettings]:
    config = importlib.import_module(f"studio_{service}.config")
    return next(
        value
        for name, value in vars(config).items()
        if name.endswith("Settings")
        and isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
    )


def container_env(manifests: Manifests, deployment: dict[str, Any]) -> dict[str, str]:
    """The ConfigMap it mounts and its own plain values (secrets are credentials only)."""
    [container] = deployment["spec"]["template"]["spec"]["containers"][:1]
    env: dict[str, str] = {}
    maps = of_kind(manifests, "ConfigMap")
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is not None:
            env.update({k: str(v) for k, v in (maps[ref["name"]].get("data") or {}).items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
    return env


def settings_from(
    cls: type[ServiceSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    with monkeypatch.context() as patch:
        for name in [n for n in __import__("os").environ if n.startswith(("STUDIO_",))]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return cls()


def budget(manifests: Manifests, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, list[str]]:
    deployments = of_kind(manifests, "Deployment")
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
        for h in of_kind(manifests, "HorizontalPodAutoscaler").values()
    }
    total, lines, max_connections = 0, [], 0
    for service in SERVICES:
        name = f"{RELEASE}-{service}"
        deployment = deployments[name]
        replicas = hpas.get(name, deployment["spec"].get("replicas", 1))
        settings = settings_from(
            settings_class(service), container_env(manifests, deployment), monkeypatch
        )
        max_connections = settings.database_max_connections
        each = settings.database_connections()
        total += replicas * each
        lines.append(f"{service}: {replicas} x {each}")
    worker_name = f"{RELEASE}-transcoder-worker"
    worker = deployments[worker_name]
    autoscalers = [m for m in manifests if m["kind"] == "TranscoderAutoscaler"]
    replicas = (
        autoscalers[0]["spec"]["maxReplicas"] if autoscalers else worker["spec"].get("replicas", 1)
    )
    worker_settings = settings_from(
        TranscoderSettings, container_env(manifests, worker), monkeypatch
    )
    assert isinstance(worker_settings, TranscoderSettings)
    each = worker_settings.worker_database_connections()
    total += replicas * each
    lines.append(f"transcoder-worker: {replicas} x {each}")
    # Migration hooks: one connection each while an upgrade runs.
    jobs = len(of_kind(manifests, "Job"))
    total += jobs
    lines.append(f"migration jobs: {jobs}")
    return total, max_connections, lines


def test_the_production_chart_at_its_maxima_fits_max_connections(
    render: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    total, max_connections, lines = budget(render("production"), monkeypatch)
    assert total <= max_connections, (
        f"{total} connections at the autoscaling maxima, Postgres allows {max_connections}: "
        + ", ".join(lines)
    )


def test_the_budget_counts_what_the_chart_scales(
    render: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: the same chart with twice the API replicas does not fit."""
    from .conftest import load_values

    values = load_values("production")
    values["serviceDefaults"]["autoscaling"]["maxReplicas"] *= 4
    total, max_connections, _ = budget(render(values), monkeypatch)
    assert total > max_connections
