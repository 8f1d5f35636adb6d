"""The GitHub Actions workflow covers what the cluster work promises."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from .conftest import ROOT
from .test_chart import KUBERNETES_VERSION

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def jobs() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return data["jobs"]


def run_text(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_every_image_is_built(jobs, route_table):
    matrix = jobs["images"]["strategy"]["matrix"]["include"]
    built = {entry["name"]: entry["dockerfile"] for entry in matrix}
    expected = {name: f"services/{name}/Dockerfile" for name in route_table["services"]}
    expected["operator"] = "deploy/operator/Dockerfile"
    expected["player"] = "deploy/player/Dockerfile"
    assert built == expected
    for dockerfile in built.values():
        assert (ROOT / dockerfile).is_file()


def test_the_chart_is_linted_and_validated_with_helm(jobs):
    job = jobs["chart"]
    text = run_text(job)
    assert "helm lint --strict" in text
    assert "helm template" in text
    assert "kubeconform -strict" in text
    assert "make helm-lint" in text
    assert job["env"]["KUBERNETES_VERSION"] == KUBERNETES_VERSION


def test_the_kind_job_installs_the_chart_and_runs_e2e(jobs):
    job = jobs["kind-e2e"]
    assert job["env"]["KIND_NODE_IMAGE"].startswith(f"kindest/node:v{KUBERNETES_VERSION[:4]}")
    assert job["env"]["STUDIO_E2E_GATEWAY_URL"] == "http://studio.localhost:8080"
    kind = next(s for s in job["steps"] if s.get("uses", "").startswith("helm/kind-action"))
    assert kind["with"]["config"] == "deploy/kind/cluster.yaml"
    text = run_text(job)
    assert "kubectl apply -f deploy/kind/dev-secrets.yaml" in text
    assert "helm upgrade --install studio deploy/helm/studio" in text
    assert "-f deploy/helm/values-dev.yaml" in text
    assert "pytest tests/e2e" in text
    # The dev install runs with pullPolicy=Never: the player's image is built and loaded.
    assert "build player deploy/player/Dockerfile" in text
    assert re.search(r"for name in [^;]*\bplayer\b[^;]*; do\s+kind load docker-image", text)


def test_the_test_job_has_postgres_and_nats(jobs):
    job = jobs["test"]
    assert "postgres" in job["services"]
    assert "docker run -d --name nats -p 4222:4222 nats:2 -js" in run_text(job)
    assert "make test" in run_text(job)
