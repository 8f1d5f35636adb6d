from __future__ import annotations

import re
from pathlib import Path

import pytest

import studio_devstack.settings as settings_module
from studio_devstack.backing import (
    BackingServiceUnavailable,
    find_nats_server,
    find_postgres_bindir,
    find_redis_server,
)
from studio_devstack.routes import RouteTable, parse_route_table
from studio_devstack.settings import DevSettings, environment_with_dotenv
from studio_devstack.stack import plan_stack

TABLE: RouteTable = parse_route_table(
    {
        "services": {"devstackmissing": {"port": 18999}},
        "routes": [{"path": "/x", "match": "prefix", "service": "devstackmissing"}],
    }
)


def test_defaults_match_the_machine(tmp_path: Path) -> None:
    settings = DevSettings.from_env({}, tmp_path)
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/studio"
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.gateway_port == 8080
    assert settings.data_dir == tmp_path / ".data"
    assert settings.runs_local_s3
    env = settings.service_env()
    assert env["STUDIO_S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["STUDIO_S3_BUCKET"] == "studio-anime"
    assert env["STUDIO_ENVIRONMENT"] == "development"
    assert env["STUDIO_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert env["STUDIO_JWKS_URL"] == "http://127.0.0.1:8102/.well-known/jwks.json"
    # The services believe X-Forwarded-For from the gateway alone.
    assert env["STUDIO_TRUSTED_PROXIES"] == "127.0.0.1"


def test_a_relative_data_dir_is_inside_the_checkout(tmp_path: Path) -> None:
    assert (
        DevSettings.from_env({"STUDIO_DATA_DIR": "state"}, tmp_path).data_dir == tmp_path / "state"
    )
    assert DevSettings.from_env({"STUDIO_DATA_DIR": "/srv/x"}, tmp_path).data_dir == Path("/srv/x")


def test_an_own_s3_endpoint_replaces_the_stand_in(tmp_path: Path) -> None:
    settings = DevSettings.from_env(
        {"STUDIO_S3_ENDPOINT_URL": "https://s3.example.test", "STUDIO_S3_PORT": "9100"}, tmp_path
    )
    assert not settings.runs_local_s3
    assert settings.service_env()["STUDIO_S3_ENDPOINT_URL"] == "https://s3.example.test"


@pytest.mark.parametrize("bad", ["http", "0", "70000"])
def test_bad_ports_are_reported_by_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="STUDIO_PORT"):
        DevSettings.from_env({"STUDIO_PORT": bad}, tmp_path)


def test_the_shell_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STUDIO_PORT=8181\nSTUDIO_S3_BUCKET='from-file'\n")
    env = environment_with_dotenv(tmp_path, {"STUDIO_PORT": "8282"})
    assert env["STUDIO_PORT"] == "8282"
    assert env["STUDIO_S3_BUCKET"] == "from-file"


def test_reachable_servers_are_used_and_missing_services_skipped(tmp_path: Path) -> None:
    settings = DevSettings.from_env({"STUDIO_PORT": "18080"}, tmp_path)
    plan = plan_stack(settings, TABLE, reachable=lambda host, port: True)
    names = [p.name for p in plan.processes]
    assert "postgres" not in names
    assert "nats" not in names
    assert "redis" not in names
    assert "s3" in names
    assert "devstackmissing" not in names
    assert any("devstackmissing: skipped" in note for note in plan.notes)
    assert plan.ports[9000] == "s3"


@pytest.mark.skipif(
    None in (find_postgres_bindir(), find_nats_server(), find_redis_server()),
    reason="no server binaries",
)
def test_silent_local_servers_get_private_processes(tmp_path: Path) -> None:
    settings = DevSettings.from_env({}, tmp_path)
    plan = plan_stack(settings, TABLE, with_gateway=False, reachable=lambda host, port: False)
    processes = {p.name: p.argv for p in plan.processes}
    assert "-js" in processes["nats"]
    assert str(tmp_path / ".data" / "postgres") in processes["postgres"]
    assert plan.ports[5432] == "postgres"
    assert plan.ports[4222] == "nats"
    assert processes["redis"][-4:] == ["--save", "", "--appendonly", "no"]
    assert "gateway" not in processes
    assert not (tmp_path / ".data").exists(), "planning starts and creates nothing"


def test_a_silent_remote_database_stops_the_plan(tmp_path: Path) -> None:
    settings = DevSettings.from_env(
        {"STUDIO_DATABASE_URL": "postgresql+asyncpg://postgres@db.invalid:5432/studio"}, tmp_path
    )
    with pytest.raises(BackingServiceUnavailable, match=r"db\.invalid:5432"):
        plan_stack(settings, TABLE, reachable=lambda host, port: False)


def test_every_variable_the_stack_reads_is_documented() -> None:
    root = Path(__file__).resolve().parents[3]
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (root / ".env.example").read_text(), re.M))
    source = Path(settings_module.__file__).read_text()
    read = set(re.findall(r'"(STUDIO_[A-Z0-9_]+)"', source))
    assert read, "the settings module reads STUDIO_* variables"
    assert read <= documented, f"missing from .env.example: {sorted(read - documented)}"


def test_the_transcoder_gets_its_worker_beside_its_api(tmp_path: Path) -> None:
    from studio_devstack.routes import load_route_table

    settings = DevSettings.from_env({"STUDIO_PORT": "18080"}, tmp_path)
    table = load_route_table(Path(__file__).resolve().parents[3] / "deploy/helm/studio/routes.yaml")
    plan = plan_stack(settings, table, reachable=lambda host, port: True)
    processes = {p.name: p.argv for p in plan.processes}
    assert "transcoder" in processes
    worker = processes["transcoder-worker"]
    assert worker[worker.index("--worker") + 1] == "worker"
    assert "--seed" not in worker
    # Only the catalog seeds, and only the transcoder has a worker.
    assert [n for n in processes if n.endswith("-worker")] == ["transcoder-worker"]


def test_a_port_offset_moves_every_service_its_upstream_and_the_worker_metrics(
    tmp_path: Path,
) -> None:
    from studio_devstack.gateway import render_nginx_conf
    from studio_devstack.stack import gateway_options, stack_route_table

    root = Path(__file__).resolve().parents[3]
    env = {"STUDIO_PORT_OFFSET": "1000", "STUDIO_PORT": "19080", "STUDIO_S3_PORT": "19000"}
    settings = DevSettings.from_env(env, root, data_dir=tmp_path)
    table = stack_route_table(settings)
    assert {s.name: s.port for s in table.services} == {
        "catalog": 9101,
        "identity": 9102,
        "media": 9103,
        "transcoder": 9104,
        "playback": 9105,
    }
    # The issuer and its keys follow identity unless given.
    assert settings.service_env()["STUDIO_JWKS_URL"] == (
        "http://127.0.0.1:9102/.well-known/jwks.json"
    )
    assert settings.service_env()["STUDIO_JWT_ISSUER"] == "http://127.0.0.1:9102"
    conf = render_nginx_conf(table, gateway_options(settings))
    assert "server 127.0.0.1:9103;" in conf
    assert "server 127.0.0.1:8103;" not in conf
    assert "listen 127.0.0.1:19080;" in conf

    plan = plan_stack(settings, table, reachable=lambda host, port: True)
    processes = {p.name: p for p in plan.processes}
    api = processes["media"].argv
    assert api[api.index("--port") + 1] == "9103"
    worker = processes["transcoder-worker"]
    assert worker.env["TRANSCODER_WORKER_METRICS_PORT"] == "9109"
    assert plan.ports[9109] == "transcoder-worker metrics"
    assert plan.ports[19000] == "s3"
    assert plan.ports[19080] == "gateway"


def test_without_an_offset_nothing_moves(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    settings = DevSettings.from_env({}, root, data_dir=tmp_path)
    assert settings.port_offset == 0
    assert settings.worker_metrics_port == 8109
    off = DevSettings.from_env({"TRANSCODER_WORKER_METRICS_PORT": "0"}, root, data_dir=tmp_path)
    assert off.worker_metrics_port == 0
    # An explicit port is not moved again (the stack's own processes read it back).
    given = {"TRANSCODER_WORKER_METRICS_PORT": "10104", "STUDIO_PORT_OFFSET": "1000"}
    assert DevSettings.from_env(given, root, data_dir=tmp_path).worker_metrics_port == 10104


@pytest.mark.parametrize("bad", ["x", "-1", "60000"])
def test_bad_offsets_are_reported_by_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="STUDIO_PORT_OFFSET"):
        DevSettings.from_env({"STUDIO_PORT_OFFSET": bad}, tmp_path)


def test_playback_urls_point_at_the_gateway_unless_told_otherwise(tmp_path: Path) -> None:
    env = DevSettings.from_env({}, tmp_path).service_env()
    assert env["MEDIA_PUBLIC_BASE_URL"] == "http://127.0.0.1:8080"
    moved = DevSettings.from_env({"STUDIO_PORT": "19080"}, tmp_path).service_env()
    assert moved["MEDIA_PUBLIC_BASE_URL"] == "http://127.0.0.1:19080"
    given = {"MEDIA_PUBLIC_BASE_URL": "https://studio.example"}
    assert DevSettings.from_env(given, tmp_path).service_env()["MEDIA_PUBLIC_BASE_URL"] == (
        "https://studio.example"
    )


def _stack_ports(offset: int, tmp_path: Path) -> set[int]:
    from studio_devstack.stack import stack_route_table

    root = Path(__file__).resolve().parents[3]
    settings = DevSettings.from_env({"STUDIO_PORT_OFFSET": str(offset)}, root, data_dir=tmp_path)
    table = stack_route_table(settings)
    plan = plan_stack(settings, table, reachable=lambda host, port: True)
    # The gateway is planned only where nginx is installed.
    return set(plan.ports) | {settings.gateway_port}


def test_stacks_a_thousand_ports_apart_share_no_port(tmp_path: Path) -> None:
    """The documented scheme: STUDIO_PORT_OFFSET=1000 (2000, ...) alone gives a
    second stack, and no port of it is one of the default stack's."""
    default = _stack_ports(0, tmp_path)
    assert default >= {8080, 8101, 8105, 8109, 9000}
    seen = set(default)
    for offset in (1000, 2000, 3000):
        ports = _stack_ports(offset, tmp_path)
        assert len(ports) == len(default)
        assert not ports & seen, f"offset {offset} collides on {sorted(ports & seen)}"
        seen |= ports
    assert {9080, 9101, 9109, 10000} <= _stack_ports(1000, tmp_path)


def test_a_worker_started_alone_takes_no_port_of_any_stack(tmp_path: Path) -> None:
    """A transcoder worker run by hand beside the stacks (no port setting) must
    not take a port a stack at any documented offset needs (it used to default
    to 9104: the transcoder API of the stack at offset 1000)."""
    from studio_transcoder.config import TranscoderSettings

    default = TranscoderSettings.model_fields["worker_metrics_port"].default
    for offset in range(0, 50001, 1000):
        assert default not in _stack_ports(offset, tmp_path), f"offset {offset}"
