"""docker-compose.yml, checked without Docker: its shape, that it has every
service of the route table, and that the gateway config is generated and valid."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from studio_devstack.backing import wait_for_tcp
from studio_devstack.gateway import content_security_policy, find_nginx

from .conftest import ROOT, http_get

COMPOSE = ROOT / "docker-compose.yml"
GATEWAY_CONF = ROOT / "deploy" / "compose" / "nginx.conf"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def gateway_module():
    spec = importlib.util.spec_from_file_location(
        "compose_gateway", ROOT / "deploy" / "compose" / "gateway.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def command_text(service: dict[str, Any]) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_every_route_table_service_is_built_migrated_and_served(services, route_table):
    for name, spec in route_table["services"].items():
        service = services[name]
        dockerfile = service["build"]["dockerfile"]
        assert dockerfile == "services/Dockerfile"
        assert service["build"]["args"] == {"SERVICE": name}
        assert (ROOT / dockerfile).is_file()
        # The image alone runs as production; compose asks for development.
        assert "STUDIO_ENVIRONMENT=production" in (ROOT / dockerfile).read_text()
        command = command_text(service)
        migrate = command.index(f"python -m studio_{name} migrate")
        serve = command.index(f"python -m studio_{name} serve --host 0.0.0.0 --port {spec['port']}")
        assert migrate < serve
        assert f"127.0.0.1:{spec['port']}/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["read_only"] is True
        env = service["environment"]
        assert env["STUDIO_NATS_URL"] == "nats://nats:4222"
        assert env["STUDIO_DATABASE_URL"].startswith("postgresql+asyncpg://postgres:")
        assert env["STUDIO_S3_ENDPOINT_URL"] == "http://minio:9000"
        # Development is asked for; X-Forwarded-For counts from the gateway alone.
        assert env["STUDIO_ENVIRONMENT"] == "development"
        gateway = services["gateway"]["networks"]["default"]["ipv4_address"]
        assert env["STUDIO_TRUSTED_PROXIES"] == gateway
        for backend in ("postgres", "nats", "redis", "minio-bucket"):
            assert backend in service["depends_on"], (name, backend)


def test_backing_servers(services):
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "--jetstream" in services["nats"]["command"]
    assert "server" in services["minio"]["command"]
    assert "mc mb --ignore-existing studio/studio-anime" in command_text(services["minio-bucket"])
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "nats", "minio", "redis"):
        assert services[name]["healthcheck"]["test"], name


def test_the_worker_drains_before_compose_kills_it(services):
    worker = services["transcoder-worker"]
    assert worker["command"] == ["python", "-m", "studio_transcoder", "worker"]
    assert worker["build"] == services["transcoder"]["build"]
    grace = float(worker["environment"]["TRANSCODER_SHUTDOWN_GRACE_SECONDS"])
    stop = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert stop is not None
    assert int(stop.group(1)) >= grace + 20


def test_the_gateway_fronts_every_service(services, route_table):
    gateway = services["gateway"]
    assert gateway["image"].startswith("nginx:")
    assert "./deploy/compose/nginx.conf:/etc/nginx/studio.conf:ro" in gateway["volumes"]
    assert set(gateway["depends_on"]) == set(route_table["services"])
    conf = GATEWAY_CONF.read_text(encoding="utf-8")
    for name, spec in route_table["services"].items():
        assert f"server {name}:{spec['port']};" in conf


def test_the_gateway_serves_the_player_it_mounts(services):
    player_dir = gateway_module().PLAYER_DIR
    assert f"./web/player:{player_dir}:ro" in services["gateway"]["volumes"]
    assert (ROOT / "web" / "player" / "index.html").is_file()
    conf = GATEWAY_CONF.read_text(encoding="utf-8")
    assert "location = / {" in conf
    assert f"root {player_dir};" in conf
    assert f"alias {player_dir}/;" in conf
    assert "location = /player/config.json {" in conf
    # .env.example has no Clerk key: development sign-in, the development CSP.
    assert 'return 200 \'{"auth":"dev","clerkPublishableKey":null}\';' in conf
    assert f'add_header Content-Security-Policy "{content_security_policy()}" always;' in conf


def test_the_gateway_config_is_up_to_date():
    assert GATEWAY_CONF.read_text(encoding="utf-8") == gateway_module().render(), (
        "regenerate: uv run python deploy/compose/gateway.py > deploy/compose/nginx.conf"
    )


def _loopback_conf(tmp_path: Path, port: int = 8080) -> Path:
    """The compose config on this machine: compose service names do not resolve
    here, and the player's files are where the checkout has them."""
    conf = GATEWAY_CONF.read_text(encoding="utf-8")
    conf = re.sub(r"server [a-z_]+:(\d+);", r"server 127.0.0.1:\1;", conf)
    conf = conf.replace("/tmp/gateway", str(tmp_path)).replace(  # noqa: S108
        "listen 0.0.0.0:8080", f"listen 127.0.0.1:{port}"
    )
    conf = conf.replace(str(gateway_module().PLAYER_DIR), str(ROOT / "web" / "player"))
    path = tmp_path / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    return path


def test_the_gateway_config_is_valid_nginx(tmp_path: Path):
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    conf = _loopback_conf(tmp_path)
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_gateway_answers_with_the_player(tmp_path: Path):
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = _loopback_conf(tmp_path, port)
    log = (tmp_path / "nginx.log").open("wb")
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        stdout=log,
        stderr=log,
    )
    try:
        assert wait_for_tcp("127.0.0.1", port, timeout=10), (tmp_path / "nginx.log").read_text()
        status, headers, body = http_get(port, "/")
        assert status == 200
        assert body == (ROOT / "web" / "player" / "index.html").read_bytes()
        assert headers["content-security-policy"] == content_security_policy()
        assert headers["x-frame-options"] == "DENY"
        status, headers, _ = http_get(port, "/player/app.js")
        assert status == 200
        assert headers["content-type"].startswith("application/javascript")
        status, _, body = http_get(port, "/player/config.json")
        assert json.loads(body) == {"auth": "dev", "clerkPublishableKey": None}
        status, headers, _ = http_get(port, "/player/nope.js")
        assert status == 404
        assert headers["content-type"] == "application/problem+json"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
