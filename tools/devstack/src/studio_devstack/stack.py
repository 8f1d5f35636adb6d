"""`studio-dev up`: decide what runs, then run all of it under honcho.

Startup order is carried by the processes themselves rather than by this one:
private Postgres/NATS, the S3 stand-in and the gateway start at once, and each
service process waits for its dependencies, migrates and then serves (see
`services.launch`). A process that exits is started again in place, with
backoff (`supervisor.Supervisor`); Ctrl-C or `studio-dev down` stops them all.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from honcho.printer import Printer

from studio_devstack.backing import (
    PostgresTarget,
    PrivateNats,
    PrivatePostgres,
    Source,
    choose_source,
    find_nats_server,
    find_postgres_bindir,
    find_redis_server,
    redis_command,
    tcp_reachable,
)
from studio_devstack.gateway import (
    GatewayOptions,
    find_nginx,
    nginx_command,
    write_nginx_conf,
)
from studio_devstack.routes import RouteTable, load_route_table
from studio_devstack.services import (
    SEEDED_SERVICES,
    WORKER_METRICS,
    WORKERS,
    prepare_data_dir,
    remove_containers,
    split_runnable,
)
from studio_devstack.settings import DevSettings, host_and_port
from studio_devstack.supervisor import Supervisor

SERVICE_HOST = "127.0.0.1"
PID_FILE_NAME = "devstack.pid"
# honcho's return codes after SIGINT / SIGTERM reached the stack itself.
STOPPED_ON_REQUEST = frozenset({130, 143})


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StackPlan:
    processes: list[ProcessSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Ports this stack is about to listen on: checked before anything starts.
    ports: dict[int, str] = field(default_factory=dict)
    # Done once the ports are known to be free: initdb, directories, nginx.conf.
    prepare: list[Callable[[], object]] = field(default_factory=list)


def note(message: str) -> None:
    print(f"studio-dev | {message}", flush=True)


def gateway_options(settings: DevSettings) -> GatewayOptions:
    return GatewayOptions(
        runtime_dir=settings.gateway_dir,
        listen_port=settings.gateway_port,
        cors_origins=settings.cors_origins,
        client_max_body_size=settings.client_max_body_size,
        source=_display_path(settings.routes_file, settings.root),
        player_dir=settings.root / "web" / "player",
        clerk_publishable_key=settings.clerk_publishable_key,
    )


def _display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def stack_route_table(settings: DevSettings) -> RouteTable:
    """The route table with the services where this stack runs them (`STUDIO_PORT_OFFSET`)."""
    return load_route_table(settings.routes_file).shifted(settings.port_offset)


def plan_stack(
    settings: DevSettings,
    table: RouteTable,
    *,
    with_gateway: bool = True,
    reachable: Callable[[str, int], bool] = tcp_reachable,
) -> StackPlan:
    plan = StackPlan()
    python = sys.executable
    child_env = settings.service_env()

    # Postgres
    pg = PostgresTarget.from_url(settings.database_url)
    bindir = find_postgres_bindir()
    up = reachable(pg.host, pg.port)
    source = choose_source(
        "Postgres", pg.host, pg.port, reachable=up, private_binary=str(bindir) if bindir else None
    )
    if source is Source.EXTERNAL:
        plan.notes.append(f"Postgres: using the server at {pg.host}:{pg.port} (db {pg.database})")
    else:
        assert bindir is not None
        private_pg = PrivatePostgres(bindir, settings.data_dir / "postgres", pg)
        plan.notes.append(
            f"Postgres: nothing answers at {pg.host}:{pg.port}; starting a private server "
            f"from {bindir} with its data in {private_pg.data_dir}"
        )
        plan.prepare.append(private_pg.initialize)
        plan.processes.append(ProcessSpec("postgres", private_pg.command()))
        plan.ports[pg.port] = "postgres"

    # NATS
    nats_host, nats_port = host_and_port(settings.nats_url, 4222)
    nats_binary = find_nats_server()
    source = choose_source(
        "NATS",
        nats_host,
        nats_port,
        reachable=reachable(nats_host, nats_port),
        private_binary=nats_binary,
    )
    if source is Source.EXTERNAL:
        plan.notes.append(f"NATS: using the server at {nats_host}:{nats_port}")
    else:
        assert nats_binary is not None
        private_nats = PrivateNats(nats_binary, settings.data_dir / "nats", nats_host, nats_port)
        plan.notes.append(
            f"NATS: nothing answers at {nats_host}:{nats_port}; starting a private "
            f"{nats_binary} with JetStream data in {private_nats.store_dir}"
        )
        plan.prepare.append(private_nats.initialize)
        plan.processes.append(ProcessSpec("nats", private_nats.command()))
        plan.ports[nats_port] = "nats"

    # Redis
    redis_host, redis_port = host_and_port(settings.redis_url, 6379)
    redis_binary = find_redis_server()
    source = choose_source(
        "Redis",
        redis_host,
        redis_port,
        reachable=reachable(redis_host, redis_port),
        private_binary=redis_binary,
        install_hint="install it: apt-get install -y redis-server",
    )
    if source is Source.EXTERNAL:
        plan.notes.append(f"Redis: using the server at {redis_host}:{redis_port}")
    else:
        assert redis_binary is not None
        plan.notes.append(
            f"Redis: nothing answers at {redis_host}:{redis_port}; starting a private "
            f"{redis_binary} that keeps nothing on disk"
        )
        plan.processes.append(
            ProcessSpec("redis", redis_command(redis_binary, redis_host, redis_port))
        )
        plan.ports[redis_port] = "redis"

    # S3
    if settings.runs_local_s3:
        store = settings.data_dir / "s3"
        plan.notes.append(
            f"S3: local stand-in (moto, objects kept in {store}) at "
            f"{settings.s3_endpoint_url}, bucket {settings.s3_bucket!r}"
        )
        argv = [python, "-m", "studio_devstack", "s3", "--port", str(settings.s3_port)]
        plan.processes.append(ProcessSpec("s3", [*argv, "--store", str(store)], child_env))
        plan.ports[settings.s3_port] = "s3"
    else:
        plan.notes.append(f"S3: using {settings.s3_endpoint_url}, bucket {settings.s3_bucket!r}")

    # Gateway
    if with_gateway:
        nginx = find_nginx()
        if nginx is None:
            plan.notes.append(
                "Gateway: nginx is not installed, so there is no gateway; services answer on "
                "their own ports. Install it with: apt-get install -y nginx-light"
            )
        else:
            options = gateway_options(settings)
            plan.prepare.append(lambda: write_nginx_conf(table, options))
            plan.processes.append(ProcessSpec("gateway", nginx_command(nginx, options.runtime_dir)))
            plan.ports[settings.gateway_port] = "gateway"
            plan.notes.append(
                f"Gateway: nginx on http://127.0.0.1:{settings.gateway_port} "
                f"(config {options.runtime_dir / 'nginx.conf'}, access log beside it)"
            )

    # Services
    if settings.images:
        # Each service runs from its image (`make images`); settings that point
        # into the data dir work because it is mounted at the same path.
        child_env["STUDIO_IMAGES"] = "1"
        child_env["STUDIO_DATA_DIR"] = str(settings.data_dir)
        child_env["STUDIO_PORT_OFFSET"] = str(settings.port_offset)
        if not os.environ.get("IDENTITY_DEV_KEY_PATH"):
            # The default is relative to the checkout, which the image does not have.
            key = settings.data_dir / "identity" / "jwt-key.pem"
            child_env["IDENTITY_DEV_KEY_PATH"] = str(key)
        plan.prepare.append(lambda: prepare_data_dir(settings.data_dir))
        plan.prepare.append(lambda: remove_containers(settings.port_offset))
        plan.notes.append(
            "Services: from their images (STUDIO_IMAGES=1; build them with `make images`)"
        )
    runnable, missing = split_runnable(table.services)
    for service in missing:
        plan.notes.append(f"{service.name}: skipped, {service.package} has no __main__ module yet")
    for service in runnable:
        argv = [
            python,
            "-m",
            "studio_devstack",
            "run-service",
            service.name,
            "--port",
            str(service.port),
            "--host",
            SERVICE_HOST,
        ]
        if service.name in SEEDED_SERVICES:
            argv.append("--seed")
        plan.processes.append(ProcessSpec(service.name, argv, child_env))
        plan.ports[service.port] = service.name
        for owner, command in WORKERS:
            if owner == service.name:
                worker_argv = [a for a in argv if a != "--seed"] + ["--worker", command]
                name = f"{service.name}-{command}"
                worker_env = dict(child_env)
                metrics = WORKER_METRICS.get((owner, command))
                if metrics is not None:
                    worker_env[metrics] = str(settings.worker_metrics_port)
                    if settings.worker_metrics_port:
                        plan.ports[settings.worker_metrics_port] = f"{name} metrics"
                plan.processes.append(ProcessSpec(name, worker_argv, worker_env))
    return plan


def busy_ports(ports: Mapping[int, str], host: str = "127.0.0.1") -> list[str]:
    return [f"{port} ({name})" for port, name in ports.items() if tcp_reachable(host, port)]


def run(settings: DevSettings, *, with_gateway: bool = True) -> int:
    table = stack_route_table(settings)
    plan = plan_stack(settings, table, with_gateway=with_gateway)
    for line in plan.notes:
        note(line)
    busy = busy_ports(plan.ports)
    if busy:
        note(
            "already in use: " + ", ".join(busy) + ". Is the stack running already? "
            "Stop it with `make down`, or change the ports (see .env.example)."
        )
        return 1
    if not plan.processes:
        note("nothing to run")
        return 1
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for step in plan.prepare:
        step()

    manager = Supervisor(Printer(sys.stdout))
    base_env = dict(os.environ)
    for spec in plan.processes:
        # honcho runs each command through `sh -c`; `exec` makes the process the
        # program itself, so the pid in `<name> started (pid=N)` is the server's:
        # a `kill -9` of it is a crash the supervisor sees, where killing a
        # wrapping shell left the server running orphaned and the shell a zombie.
        manager.add_process(
            spec.name,
            "exec " + shlex.join(spec.argv),
            env={**base_env, **spec.env},
            cwd=str(settings.root),
        )
    pid_file = settings.data_dir / PID_FILE_NAME
    pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    if any(p.name == "gateway" for p in plan.processes):
        note(f"Try: curl http://127.0.0.1:{settings.gateway_port}/api/titles  (Ctrl-C stops all)")
    try:
        manager.loop()
    finally:
        pid_file.unlink(missing_ok=True)
        if settings.images:
            remove_containers(settings.port_offset)
    code = int(manager.returncode or 0)
    # Ctrl-C or `studio-dev down` is how the stack is meant to stop: not a failure.
    return 0 if code in STOPPED_ON_REQUEST else code


# ---------------------------------------------------------------- down

# pid files the stack's private servers leave, and the program each pid must be.
_LEFTOVER_PID_FILES = (
    (Path("postgres") / "postmaster.pid", "postgres"),
    (Path("nats") / "nats-server.pid", "nats-server"),
    (Path("gateway") / "nginx.pid", "nginx"),
)


def _process_matches(pid: int, needle: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return needle.encode() in cmdline


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0].strip()
        return int(first)
    except (OSError, ValueError, IndexError):
        return None


def _stop(pid: int, timeout: float = 10.0) -> bool:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat_line.rsplit(")", 1)[-1].split()[0] == "Z"


def down(data_dir: Path, port_offset: int = 0) -> int:
    """Stop a running `studio-dev up` (which stops all it started), then any
    private server a killed stack left behind."""
    stopped = 0
    up_pid = _read_pid(data_dir / PID_FILE_NAME)
    if up_pid is not None and _process_matches(up_pid, "studio"):
        note(f"stopping the stack (pid {up_pid})")
        if not _stop(up_pid, timeout=20):
            note(f"pid {up_pid} did not stop within 20 s")
            return 1
        stopped += 1
    (data_dir / PID_FILE_NAME).unlink(missing_ok=True)
    for relative, program in _LEFTOVER_PID_FILES:
        pid = _read_pid(data_dir / relative)
        if pid is None or not _process_matches(pid, program):
            continue
        note(f"stopping leftover {program} (pid {pid})")
        if not _stop(pid):
            note(f"{program} (pid {pid}) did not stop")
            return 1
        stopped += 1
    # Containers of an image-mode stack that was killed (a no-op without Docker).
    removed = remove_containers(port_offset)
    if removed:
        note(f"removed {removed} container(s) of the stack")
        stopped += 1
    if not stopped:
        note("nothing running")
    return 0
