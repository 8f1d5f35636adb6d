"""Starting one service: wait for what it needs, migrate, seed, then serve.

Each service runs this as its own process under the stack, so migrations run in
parallel (each service owns its schema) and a failing one is started again by
the stack, with backoff, its service's name on the error. The last step replaces this process with the
service's `serve`, so the process manager signals the server directly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from studio_devstack.backing import LOOPBACK_HOSTS, ensure_database, wait_for_tcp
from studio_devstack.routes import Service
from studio_devstack.s3 import S3Location, wait_for_bucket

# Services whose CLI has a `seed` command, run after their migrations.
SEEDED_SERVICES = frozenset({"catalog"})
# Background processes beside a service's API: (service, CLI command).
WORKERS: tuple[tuple[str, str], ...] = (("transcoder", "worker"),)
# The variable that sets a worker's Prometheus port (the stack's, offset included).
WORKER_METRICS: dict[tuple[str, str], str] = {
    ("transcoder", "worker"): "TRANSCODER_WORKER_METRICS_PORT"
}
DEPENDENCY_TIMEOUT = 90.0

# Image mode (`STUDIO_IMAGES=1`): each service command runs in its image, as in
# the cluster (read-only, non-root), instead of the checkout's Python.
IMAGES_VARIABLE = "STUDIO_IMAGES"
CONTAINER_UID = 10001
# Containers carry the stack's port offset, so stopping the stack (or `down`
# after a kill) removes exactly its own.
STACK_LABEL = "studio.stack"
# The settings a service reads: passed into its container by name.
SETTINGS_PREFIXES = (
    "STUDIO_",
    "CATALOG_",
    "IDENTITY_",
    "MEDIA_",
    "TRANSCODER_",
    "PLAYBACK_",
    "OTEL_",
    "SENTRY_",
)


def image_mode(env: Mapping[str, str]) -> bool:
    return env.get(IMAGES_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def image_tag(service: Service) -> str:
    return f"studio/studio-{service.name}:dev"


def container_argv(service: Service, args: Iterable[str], env: Mapping[str, str]) -> list[str]:
    """`docker run` of the service's image with its CLI `args`: host network
    (loopback), read-only, its non-root user; settings passed by name, and the
    stack's data dir mounted at the same path when one is named."""
    docker = shutil.which("docker") or "docker"
    argv = [docker, "run", "--rm", "--network", "host", "--read-only"]
    argv += ["--user", str(CONTAINER_UID), "--tmpfs", "/tmp"]  # noqa: S108 - the container's
    argv += ["--label", f"{STACK_LABEL}={env.get('STUDIO_PORT_OFFSET', '0')}"]
    for name in sorted(env):
        if name.startswith(SETTINGS_PREFIXES) and name != IMAGES_VARIABLE:
            argv += ["-e", name]
    data_dir = env.get("STUDIO_DATA_DIR")
    if data_dir:
        argv += ["-v", f"{data_dir}:{data_dir}"]
    return [*argv, image_tag(service), "python", "-m", service.package, *args]


def remove_containers(port_offset: int) -> int:
    """Remove the containers of the stack on `port_offset`; how many there were."""
    if shutil.which("docker") is None:
        return 0
    label = f"label={STACK_LABEL}={port_offset}"
    listed = subprocess.run(  # noqa: S603
        ["docker", "ps", "-aq", "--filter", label],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    ids = listed.stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)  # noqa: S603,S607
    return len(ids)


def prepare_data_dir(data_dir: Path, subdirs: Iterable[str] = ("identity", "transcode")) -> None:
    """Let the containers' user write where settings point into the data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(data_dir.stat().st_mode | 0o111)
    for name in subdirs:
        path = data_dir / name
        path.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            for child in (path, *path.rglob("*")):
                os.chown(child, CONTAINER_UID, CONTAINER_UID)
        else:
            path.chmod(0o777)


def has_cli(service: Service) -> bool:
    """A service can run once its package has a `__main__` module."""
    try:
        return importlib.util.find_spec(f"{service.package}.__main__") is not None
    except ModuleNotFoundError:
        return False


def split_runnable(services: Iterable[Service]) -> tuple[list[Service], list[Service]]:
    runnable: list[Service] = []
    missing: list[Service] = []
    for service in services:
        (runnable if has_cli(service) else missing).append(service)
    return runnable, missing


@dataclass(frozen=True)
class LaunchPlan:
    service: Service
    host: str
    seed: bool

    def cli(self, *args: str) -> list[str]:
        if image_mode(os.environ):
            return container_argv(self.service, args, os.environ)
        return [sys.executable, "-m", self.service.package, *args]

    def serve_argv(self) -> list[str]:
        return self.cli("serve", "--host", self.host, "--port", str(self.service.port))


def log(service: Service, message: str) -> None:
    print(f"[studio-dev] {service.name}: {message}", flush=True)


def wait_for_dependencies(service: Service, env: Mapping[str, str]) -> None:
    database_url = env.get("STUDIO_DATABASE_URL")
    if database_url:
        log(service, "waiting for Postgres")
        if asyncio.run(ensure_database(database_url, wait_seconds=DEPENDENCY_TIMEOUT)):
            log(service, "created the database")
    nats_url = env.get("STUDIO_NATS_URL")
    if nats_url:
        parts = urlsplit(nats_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        if not wait_for_tcp(host, port, DEPENDENCY_TIMEOUT):
            raise RuntimeError(f"NATS at {host}:{port} did not answer")
    endpoint = env.get("STUDIO_S3_ENDPOINT_URL")
    # Only the local stand-in is waited for: it starts with the stack.
    if endpoint and urlsplit(endpoint).hostname in LOOPBACK_HOSTS:
        location = S3Location(
            endpoint_url=endpoint,
            bucket=env.get("STUDIO_S3_BUCKET", "studio-anime"),
            region=env.get("STUDIO_S3_REGION", "us-east-1"),
            access_key_id=env.get("STUDIO_S3_ACCESS_KEY_ID", "devstack"),
            secret_access_key=env.get("STUDIO_S3_SECRET_ACCESS_KEY", "devstack-not-a-secret"),
        )
        if not wait_for_bucket(location, DEPENDENCY_TIMEOUT):
            raise RuntimeError(f"bucket {location.bucket!r} at {endpoint} did not appear")


def launch(plan: LaunchPlan) -> int:
    """Prepare the service, then exec its server (returns only on failure)."""
    service = plan.service
    try:
        wait_for_dependencies(service, os.environ)
    except Exception as exc:
        log(service, f"not started: {exc}")
        return 1
    steps = [("migrate", plan.cli("migrate"))]
    if plan.seed:
        steps.append(("seed", plan.cli("seed")))
    for name, argv in steps:
        log(service, f"{name}: {' '.join(argv[1:])}")
        code = subprocess.run(argv, check=False).returncode  # noqa: S603 - our own CLI
        if code != 0:
            log(service, f"{name} failed with exit code {code}")
            return code
    argv = plan.serve_argv()
    log(service, f"serving on http://{plan.host}:{service.port}")
    os.execv(argv[0], argv)  # noqa: S606 - replaces this process with the server


def launch_worker(service: Service, command: str, host: str) -> int:
    """Start a service's background worker once its API answers.

    The API process runs the migrations; waiting for its port means the worker
    never races it on the schema.
    """
    try:
        wait_for_dependencies(service, os.environ)
    except Exception as exc:
        log(service, f"{command} not started: {exc}")
        return 1
    log(service, f"{command}: waiting for the API on {host}:{service.port}")
    if not wait_for_tcp(host, service.port, DEPENDENCY_TIMEOUT * 2):
        log(service, f"{command} not started: the API never answered")
        return 1
    argv = [sys.executable, "-m", service.package, command]
    if image_mode(os.environ):
        argv = container_argv(service, [command], os.environ)
    log(service, f"{command}: {' '.join(argv[1:])}")
    os.execv(argv[0], argv)  # noqa: S606 - replaces this process with the worker
