"""The GitHub Actions workflow covers what the cluster work promises."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from .conftest import ROOT
from .test_chart import KUBERNETES_VERSION

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
PUBLISH = ROOT / ".github" / "workflows" / "publish.yml"


@pytest.fixture(scope="module")
def jobs() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return data["jobs"]


def run_text(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_every_image_is_built(jobs, route_table):
    matrix = jobs["images"]["strategy"]["matrix"]["include"]
    built = {entry["name"]: (entry["dockerfile"], entry["build-args"]) for entry in matrix}
    expected = {
        name: ("services/Dockerfile", f"SERVICE={name}") for name in route_table["services"]
    }
    expected["operator"] = ("deploy/operator/Dockerfile", "")
    expected["player"] = ("deploy/player/Dockerfile", "")
    assert built == expected
    for dockerfile, _ in built.values():
        assert (ROOT / dockerfile).is_file()
    build = next(s for s in jobs["images"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["file"] == "${{ matrix.dockerfile }}"
    assert build["with"]["build-args"] == "${{ matrix.build-args }}"


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
    # ffmpeg makes the e2e fixtures' video; the runner has none.
    assert "apt-get install" in text
    assert "ffmpeg" in text
    assert "kubectl apply -f deploy/kind/dev-secrets.yaml" in text
    assert "helm upgrade --install studio deploy/helm/studio" in text
    assert "-f deploy/helm/values-dev.yaml" in text
    assert "pytest tests/e2e" in text
    # Then uninstalled with nothing before it, and the namespace deleted: a
    # finalizer left on an autoscaler would hang both.
    steps = [s.get("name") for s in job["steps"]]
    assert steps.index("Uninstall cleanly") > steps.index("pytest tests/e2e")
    assert "helm uninstall studio -n studio --wait" in text
    assert "kubectl delete namespace studio --timeout=" in text
    # Every image is built with build-push-action (which reaches the GitHub cache;
    # a --cache-from in a run: step is inert), loaded into docker, then into kind.
    builds = {
        step["with"]["tags"]: step["with"]
        for step in job["steps"]
        if step.get("uses", "").startswith("docker/build-push-action")
    }
    images = jobs["images"]["strategy"]["matrix"]["include"]
    assert set(builds) == {f"studio/studio-{i['name']}:dev" for i in images}
    for image in images:
        build = builds[f"studio/studio-{image['name']}:dev"]
        assert build["file"] == image["dockerfile"]
        assert build.get("build-args", "") == image["build-args"]
        assert build["load"] is True
        assert build["cache-from"] == f"type=gha,scope={image['name']}"
    assert "--cache-from" not in text
    assert re.search(r"for name in [^;]*\bplayer\b[^;]*; do\s+kind load docker-image", text)


def test_the_test_job_has_postgres_and_nats(jobs):
    job = jobs["test"]
    assert "postgres" in job["services"]
    assert "docker run -d --name nats -p 4222:4222 nats:2 -js" in run_text(job)
    assert "make test" in run_text(job)


def test_the_chart_job_lints_every_values_file(jobs):
    text = run_text(jobs["chart"])
    assert "for values in deploy/helm/values-*.yaml" in text
    assert "deploy/helm/studio/values.yaml deploy/helm/values-*.yaml" in text
    # The other projects' kinds (HTTPRoute, ServiceMonitor, ScaledObject) are validated too.
    assert "CRDs-catalog" in text


def test_a_tag_publishes_every_image_with_sbom_and_provenance(jobs):
    data = yaml.safe_load(PUBLISH.read_text(encoding="utf-8"))
    # PyYAML reads the key `on` as True.
    triggers = data.get("on", data.get(True))
    assert triggers["push"]["tags"] == ["v*"]
    assert data["permissions"]["packages"] == "write"
    publish = data["jobs"]["images"]
    assert publish["strategy"]["matrix"] == jobs["images"]["strategy"]["matrix"]
    (build,) = [
        s for s in publish["steps"] if s.get("uses", "").startswith("docker/build-push-action")
    ]
    options = build["with"]
    assert options["push"] is True
    assert options["file"] == "${{ matrix.dockerfile }}"
    assert options["build-args"] == "${{ matrix.build-args }}"
    assert options["sbom"] is True
    assert options["provenance"].startswith("mode=")
    assert "linux/arm64" in options["platforms"]
    assert options["cache-from"] == "type=gha,scope=${{ matrix.name }}"
    (meta,) = [
        s for s in publish["steps"] if s.get("uses", "").startswith("docker/metadata-action")
    ]
    # ghcr.io/<owner>/studio-<name>:<appVersion>: the chart's default references.
    assert (
        meta["with"]["images"] == "ghcr.io/${{ github.repository_owner }}/studio-${{ matrix.name }}"
    )
    assert "needs.version.outputs.version" in meta["with"]["tags"]
    assert "appVersion" in run_text(data["jobs"]["version"])
