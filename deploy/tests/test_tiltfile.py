"""The Tiltfile run against stand-ins for Tilt's functions (Starlark is close
enough to Python): what it builds, installs and names must match the chart."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from .conftest import ROOT, load_values
from .test_player import dockerfile_instructions


class FakeTilt:
    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.local: dict[str, dict[str, Any]] = {}
        self.yaml: list[Any] = []
        self.helm_calls: list[dict[str, Any]] = []

    def globals(self) -> dict[str, Any]:
        def docker_build(ref: str, context: str, **kwargs: Any) -> None:
            self.images[ref] = {"context": context, **kwargs}

        def helm(path: str, **kwargs: Any) -> str:
            self.helm_calls.append({"path": path, **kwargs})
            return "<helm>"

        def k8s_resource(workload: str, **kwargs: Any) -> None:
            self.resources[workload] = kwargs

        def local_resource(name: str, **kwargs: Any) -> None:
            self.local[name] = kwargs

        def read_yaml(path: str) -> Any:
            return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))

        return {
            "allow_k8s_contexts": lambda contexts: None,
            "local_resource": local_resource,
            "k8s_yaml": self.yaml.append,
            "blob": lambda text: yaml.safe_load(text),
            "read_yaml": read_yaml,
            "docker_build": docker_build,
            "sync": lambda src, dst: ("sync", src, dst),
            "helm": helm,
            "k8s_resource": k8s_resource,
            "link": lambda url, name: (url, name),
            "TRIGGER_MODE_MANUAL": "manual",
        }


def run_tiltfile() -> FakeTilt:
    tilt = FakeTilt()
    source = (ROOT / "Tiltfile").read_text(encoding="utf-8")
    exec(compile(source, "Tiltfile", "exec"), tilt.globals())  # noqa: S102 - our own file
    return tilt


def test_the_tiltfile_builds_every_image_the_chart_uses(render, route_table):
    tilt = run_tiltfile()
    python_images = {f"studio/studio-{name}" for name in route_table["services"]} | {
        "studio/studio-operator"
    }
    expected = python_images | {"studio/studio-player"}
    assert set(tilt.images) == expected
    for ref in python_images:
        image = tilt.images[ref]
        assert image["dockerfile"] == "deploy/tilt/Dockerfile"
        assert (ROOT / image["build_args"]["SOURCE"] / "pyproject.toml").is_file(), ref
    assert tilt.images["studio/studio-transcoder"]["build_args"]["APT_PACKAGES"] == "ffmpeg"
    for name in route_table["services"]:
        live = tilt.images[f"studio/studio-{name}"]["live_update"]
        assert ("sync", f"services/{name}/src", f"/app/services/{name}/src") in live

    manifests = render({**load_values("dev"), "liveUpdate": True})
    images = {
        c["image"].rsplit(":", 1)[0]
        for m in manifests
        for c in m.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    }
    studio_images = {i for i in images if i.startswith("studio/")}
    assert studio_images == expected


def test_the_tiltfile_builds_the_player_from_its_dockerfile_with_every_file_it_copies():
    image = run_tiltfile().images["studio/studio-player"]
    assert image["dockerfile"] == "deploy/player/Dockerfile"
    assert image["context"] == "."
    sources = [
        source
        for op, arg in dockerfile_instructions()
        if op == "COPY"
        for source in shlex.split(arg)[:-1]
    ]
    assert sources
    for source in sources:
        path = source.rstrip("/")
        assert any(path == o or path.startswith(o + "/") for o in image["only"]), source
        assert path not in image.get("ignore", []), source


def test_the_tiltfile_installs_the_chart_with_dev_values_and_live_update():
    tilt = run_tiltfile()
    (call,) = tilt.helm_calls
    assert call["path"] == "deploy/helm/studio"
    assert call["values"] == ["deploy/helm/values-dev.yaml"]
    assert "liveUpdate=true" in call["set"]
    assert (ROOT / "deploy/kind/dev-secrets.yaml").as_posix() in {
        (ROOT / y).as_posix() for y in tilt.yaml if isinstance(y, str)
    }


def test_every_tilt_resource_is_a_rendered_workload(render, route_table):
    tilt = run_tiltfile()
    manifests = render({**load_values("dev"), "liveUpdate": True})
    workloads = {
        m["metadata"]["name"]
        for m in manifests
        if m["kind"] in {"Deployment", "StatefulSet", "Job"}
    }
    assert set(tilt.resources) <= workloads, set(tilt.resources) - workloads
    for name, spec in route_table["services"].items():
        forwards = tilt.resources[f"studio-{name}"]["port_forwards"]
        assert forwards == [f"{spec['port']}:{spec['port']}"]


def test_dev_secrets_cover_every_secret_the_dev_install_reads(render):
    secrets = {
        d["metadata"]["name"]: set(d["stringData"])
        for d in yaml.safe_load_all(Path(ROOT / "deploy/kind/dev-secrets.yaml").read_text())
    }
    for manifest in render("dev"):
        pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), (
                        manifest["metadata"]["name"],
                        ref,
                    )


def test_tilt_down_needs_no_manual_step():
    """The operator puts no finalizer on the autoscalers (deploy/tests/test_lifecycle.py),
    so no resource has to delete them before `tilt down`."""
    tilt = run_tiltfile()
    assert not [
        name
        for name, spec in tilt.local.items()
        if "transcoderautoscaler" in str(spec.get("cmd", "")).lower()
    ]
    assert all(spec.get("trigger_mode") != "manual" for spec in tilt.local.values())
