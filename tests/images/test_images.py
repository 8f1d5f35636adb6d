"""Every image, built by `make images` (studio_devstack.images), started as it runs
in the cluster: a read-only root filesystem, its non-root user, only /tmp
writable. Each service runs its migrations against a scratch database on the
machine's Postgres, then serves and answers /readyz in production mode; the
transcoder worker answers its /healthz; the operator's code and kopf import; the
player's nginx serves the page.

Host network, loopback only (dockerd runs without a bridge). Skipped only when
no Docker engine can be started at all; `make test` builds the images before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from studio_common.testing.infra import (
    create_database,
    drop_database,
    free_port,
    nats_server,
    postgres_server,
    s3_server,
)
from studio_devstack import images

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
SERVICE_UID = "10001"
NGINX_UID = "101"
READY_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def built() -> dict[str, str]:
    try:
        images.ensure_docker()
    except images.ImageBuildError as exc:
        pytest.skip(f"no Docker engine can run here: {exc}")
    # Cached layers make this quick after `make images`; from cold it builds all.
    images.build(ROOT)
    return {image.name: image.tag for image in images.IMAGES}


@pytest.fixture(scope="module")
def environment() -> Iterator[dict[str, str]]:
    """Production settings, pointed at the machine's servers and private names."""
    suffix = uuid.uuid4().hex[:10]
    with postgres_server() as admin_url, nats_server() as nats_url, s3_server() as s3_url:
        database_url = asyncio.run(create_database(admin_url, "studio_images"))
        try:
            yield {
                "STUDIO_ENVIRONMENT": "production",
                "STUDIO_DATABASE_URL": database_url,
                "STUDIO_NATS_URL": nats_url,
                "STUDIO_EVENT_SUBJECT_ROOT": f"images{suffix}",
                "STUDIO_EVENT_STREAM": f"IMAGES{suffix}",
                "STUDIO_JWT_AUDIENCE": "studio-images-test",
                "STUDIO_S3_ENDPOINT_URL": s3_url,
                "STUDIO_S3_ACCESS_KEY_ID": "images",
                "STUDIO_S3_SECRET_ACCESS_KEY": "images-not-a-secret",
                "STUDIO_LOG_JSON": "false",
                # What production requires of identity and media (their startup checks).
                "IDENTITY_CLERK_SECRET_KEY": "sk_test_images_not_a_secret",
                "MEDIA_PLAYBACK_SIGNING_KEY": secrets.token_urlsafe(32),
                "MEDIA_PUBLIC_BASE_URL": "http://127.0.0.1:8080",
                "MEDIA_RATE_LIMIT_PREFIX": f"images{suffix}",
            }
        finally:
            asyncio.run(drop_database(admin_url, database_url))
            asyncio.run(_delete_stream(nats_url, f"IMAGES{suffix}"))


async def _delete_stream(nats_url: str, stream: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def _docker_run(
    image: str,
    argv: Sequence[str],
    *,
    user: str,
    env: dict[str, str] | None = None,
    detach: bool = False,
    mounts: Sequence[str] = (),
) -> list[str]:
    command = ["docker", "run", "--network", "host", "--read-only", "--user", user]
    command += ["--tmpfs", "/tmp", "--label", "studio.test=images"]  # noqa: S108 - in the container
    command += ["-d"] if detach else ["--rm"]
    for name, value in (env or {}).items():
        command += ["-e", f"{name}={value}"]
    for mount in mounts:
        command += ["-v", mount]
    return [*command, image, *argv]


def _run(command: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def container() -> Iterator[list[str]]:
    """Ids of detached containers, removed after the test (their logs printed)."""
    started: list[str] = []
    yield started
    for cid in started:
        logs = _run(["docker", "logs", "--tail", "40", cid])
        print(f"--- docker logs {cid[:12]}\n{logs.stdout}{logs.stderr}")
        _run(["docker", "rm", "-f", cid])


def _start(command: list[str], started: list[str]) -> str:
    result = _run(command)
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    started.append(cid)
    return cid


def _wait_for(url: str, cid: str) -> httpx.Response:
    deadline = time.monotonic() + READY_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
            last = response
        except httpx.HTTPError as exc:
            last = exc
        state = _run(["docker", "inspect", "-f", "{{.State.Running}}", cid]).stdout.strip()
        assert state == "true", f"the container exited before {url} answered"
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {READY_TIMEOUT:.0f}s: {last!r}")


@pytest.mark.parametrize("service", images.SERVICES)
def test_service_image_migrates_and_is_ready(
    service: str, built: dict[str, str], environment: dict[str, str], container: list[str]
) -> None:
    image = built[service]
    package = f"studio_{service}"
    # The default command (services/Dockerfile) is this service's own, not another's.
    cmd = _run(["docker", "image", "inspect", "-f", "{{json .Config.Cmd}}", image])
    assert json.loads(cmd.stdout) == ["studio-service", "serve", "--host", "0.0.0.0"]
    usage = _run(_docker_run(image, ["studio-service", "--help"], user=SERVICE_UID))
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith(f"usage: studio-{service} "), usage.stdout
    migrate = _run(
        _docker_run(image, ["python", "-m", package, "migrate"], user=SERVICE_UID, env=environment)
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    port = free_port()
    serve = ["python", "-m", package, "serve", "--host", "127.0.0.1", "--port", str(port)]
    cid = _start(
        _docker_run(image, serve, user=SERVICE_UID, env=environment, detach=True), container
    )
    ready = _wait_for(f"http://127.0.0.1:{port}/readyz", cid)
    assert ready.json()["checks"]["database"] == "ok"


def test_transcoder_worker_image_is_live(
    built: dict[str, str], environment: dict[str, str], container: list[str]
) -> None:
    image = built["transcoder"]
    migrate = _run(
        _docker_run(
            image,
            ["python", "-m", "studio_transcoder", "migrate"],
            user=SERVICE_UID,
            env=environment,
        )
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert _run(_docker_run(image, ["ffmpeg", "-version"], user=SERVICE_UID)).returncode == 0

    port = free_port()
    env = {
        **environment,
        "TRANSCODER_WORKER_METRICS_PORT": str(port),
        "TRANSCODER_WORKER_METRICS_HOST": "127.0.0.1",
    }
    cid = _start(
        _docker_run(
            image,
            ["python", "-m", "studio_transcoder", "worker"],
            user=SERVICE_UID,
            env=env,
            detach=True,
        ),
        container,
    )
    _wait_for(f"http://127.0.0.1:{port}/healthz", cid)


def test_operator_image_imports(built: dict[str, str]) -> None:
    image = built["operator"]
    code = "import kopf, studio_operator.__main__, studio_operator.handlers; print('ok')"
    imported = _run(_docker_run(image, ["python", "-c", code], user=SERVICE_UID))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "ok"
    usage = _run(_docker_run(image, ["kopf", "run", "--help"], user=SERVICE_UID))
    assert usage.returncode == 0, usage.stderr


def test_player_image_serves_the_page(
    built: dict[str, str], container: list[str], tmp_path: Path
) -> None:
    image = built["player"]
    # The image listens on 8080; this machine's stacks may use that port, so the
    # same config is mounted with a free one instead.
    config = _run(["docker", "run", "--rm", "--entrypoint", "cat", image, "/etc/nginx/nginx.conf"])
    assert config.returncode == 0, config.stderr
    assert "listen 8080;" in config.stdout
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(config.stdout.replace("listen 8080;", f"listen 127.0.0.1:{port};"))
    conf.chmod(0o644)
    cid = _start(
        _docker_run(
            image,
            [],
            user=NGINX_UID,
            detach=True,
            mounts=[f"{conf}:/etc/nginx/nginx.conf:ro"],
        ),
        container,
    )
    page = _wait_for(f"http://127.0.0.1:{port}/", cid)
    assert "<html" in page.text.lower()
    assert page.headers["content-security-policy"]
