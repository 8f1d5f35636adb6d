"""The Dockerfiles build on any machine: base images are build arguments whose
defaults are the real upstream images, and the dependency layer is the same
instructions over the same files in every Python image, so the engine builds
it once and every other image reuses it (tests/images builds and starts them)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DOCKERFILE = "services/Dockerfile"
PYTHON_DOCKERFILES = [SERVICE_DOCKERFILE, "deploy/operator/Dockerfile"]
UPSTREAM = {
    "PYTHON_IMAGE": "python:3.11-slim",
    "UV_IMAGE": "ghcr.io/astral-sh/uv:0.13",
    "NGINX_IMAGE": "nginxinc/nginx-unprivileged:1.27-alpine",
}


def instructions(path: str) -> list[str]:
    text = (ROOT / path).read_text(encoding="utf-8").replace("\\\n", " ")
    lines = (" ".join(line.split()) for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def base_arguments(path: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in instructions(path):
        if line.startswith("FROM "):
            break
        if line.startswith("ARG "):
            name, _, default = line.removeprefix("ARG ").partition("=")
            found[name] = default
    return found


@pytest.mark.parametrize(
    "path", [*PYTHON_DOCKERFILES, "deploy/player/Dockerfile", "deploy/tilt/Dockerfile"]
)
def test_bases_are_build_arguments_defaulting_to_upstream(path: str) -> None:
    arguments = base_arguments(path)
    assert arguments, f"{path}: no ARG before the first FROM"
    for name, default in arguments.items():
        assert default == UPSTREAM[name], (path, name)
    froms = [line for line in instructions(path) if line.startswith("FROM ")]
    for line in froms:
        image = line.split()[1]
        assert image.startswith("${") or image == "scratch", f"{path}: {line} is not an argument"
    for line in instructions(path):
        if line.startswith("COPY --from="):
            source = line.split()[1].removeprefix("--from=")
            # A stage of this file, never an image pulled from a registry.
            assert not set(source) & {"/", ":"}, f"{path}: {line} names a registry"


def dependency_layer(path: str) -> list[str]:
    """The build stage up to its first `uv sync` (the dependencies alone)."""
    lines = instructions(path)
    start = next(i for i, line in enumerate(lines) if line.endswith(" AS build"))
    end = next(i for i, line in enumerate(lines) if line.startswith("RUN uv sync"))
    return lines[start : end + 1]


def test_every_python_image_shares_one_dependency_layer() -> None:
    first, *others = PYTHON_DOCKERFILES
    expected = dependency_layer(first)
    assert any("--no-install-workspace" in line for line in expected)
    for path in others:
        assert dependency_layer(path) == expected, path
    # Every workspace member's pyproject is in it: the lock is resolved against all.
    members = {p.parent.relative_to(ROOT) for p in ROOT.glob("*/*/pyproject.toml")}
    copied = " ".join(expected)
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/" in copied, member


def test_one_dockerfile_builds_every_service() -> None:
    """No service keeps a Dockerfile of its own; services/Dockerfile takes the
    service as a build argument, declared after the shared dependency layer (an
    ARG before it would make that layer's cache differ per service)."""
    services = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))
    assert services
    assert not list((ROOT / "services").glob("*/Dockerfile"))
    lines = instructions(SERVICE_DOCKERFILE)
    declared = lines.index("ARG SERVICE")
    assert declared > lines.index(dependency_layer(SERVICE_DOCKERFILE)[-1])
    assert "USER 10001" in lines
    text = " ".join(lines)
    expected = [
        "COPY services/${SERVICE} services/${SERVICE}",
        '--package "studio-$SERVICE"',
        # Production unless the deployment says otherwise.
        "STUDIO_ENVIRONMENT=production",
        # The transcoder's image alone carries FFmpeg.
        '[ "$SERVICE" = transcoder ]',
        "install -y --no-install-recommends ffmpeg",
    ]
    assert [fragment for fragment in expected if fragment not in text] == []
