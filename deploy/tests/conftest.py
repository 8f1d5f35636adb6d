"""Rendering the chart offline with Helm's own library (helm-python-sdk)."""

from __future__ import annotations

from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "studio"
# Every values file: the chart's defaults and deploy/helm/values-<name>.yaml.
VALUES: dict[str, Path | None] = {
    "default": None,
    **{
        path.stem.removeprefix("values-"): path
        for path in sorted((ROOT / "deploy" / "helm").glob("values-*.yaml"))
    },
}
RELEASE, NAMESPACE = "studio", "studio"


def _helm() -> Any:
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - the dev group installs it
        pytest.skip(f"helm-python-sdk is not installed: {exc}")
    try:
        helm_python.helm_sdk_version()
    except OSError as exc:  # pragma: no cover - e.g. no libhelm for this platform
        pytest.skip(f"the embedded Helm library cannot load on this machine: {exc}")
    return helm_python


@pytest.fixture(scope="session")
def helm() -> Any:
    return _helm()


def load_values(name: str) -> dict[str, Any]:
    path = VALUES[name]
    return {} if path is None else yaml.safe_load(path.read_text(encoding="utf-8"))


Manifests = list[dict[str, Any]]


@pytest.fixture(scope="session")
def render(helm: Any) -> Callable[..., Manifests]:
    chart = helm.Chart.load(str(CHART))
    cache: dict[str, Manifests] = {}

    def _render(values: str | dict[str, Any] = "default", *, is_upgrade: bool = False) -> Manifests:
        key = values if isinstance(values, str) else None
        if key is not None and not is_upgrade and key in cache:
            return cache[key]
        data = load_values(values) if isinstance(values, str) else values
        files = chart.render(
            data,
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=not is_upgrade,
            is_upgrade=is_upgrade,
        )
        manifests: Manifests = []
        for path in sorted(files):
            if not path.endswith((".yaml", ".yml")):
                continue  # NOTES.txt
            for doc in yaml.safe_load_all(files[path]):
                if doc:
                    manifests.append(doc)
        if key is not None and not is_upgrade:
            cache[key] = manifests
        return manifests

    return _render


@pytest.fixture(scope="session")
def route_table() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "routes.yaml").read_text(encoding="utf-8"))
    return data


def of_kind(manifests: Manifests, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@pytest.fixture(scope="session")
def kinds() -> Callable[[Manifests, str], dict[str, dict[str, Any]]]:
    return of_kind


def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET from a local nginx under test: status, lower-cased headers, body."""
    conn = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()
