"""`studio-dev up` end to end with a tiny fake service: honcho runs the S3
stand-in, the gateway and the service, the service is migrated before it
serves and gets the stack's settings, and `studio-dev down` stops it all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import boto3
import pytest

from studio_devstack.backing import tcp_reachable, wait_for_tcp
from studio_devstack.gateway import find_nginx

ROOT = Path(__file__).resolve().parents[3]
# Unique per run: two test runs on one machine must not share a database.
E2E_DATABASE = f"studio_devstack_e2e_{os.getpid()}"
STUDIO_DEV = [sys.executable, "-m", "studio_devstack"]

pytestmark = pytest.mark.skipif(
    not (tcp_reachable("127.0.0.1", 5432) and tcp_reachable("127.0.0.1", 4222)),
    reason="needs the machine's Postgres (5432) and NATS (4222)",
)

FAKE_MAIN = """
import argparse, json, os, pathlib, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

state = pathlib.Path(os.environ["DEVFAKE_STATE"])
command = sys.argv[1]
if command == "migrate":
    (state / "log").open("a").write("migrate\\n")
elif command == "seed":
    (state / "log").open("a").write("seed\\n")
elif command == "serve":
    parser = argparse.ArgumentParser()
    parser.add_argument("serve")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    (state / "log").open("a").write("serve\\n")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({
                "path": self.path,
                "log": (state / "log").read_text().split(),
                "env": {k: v for k, v in os.environ.items() if k.startswith("STUDIO_")},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    HTTPServer((args.host, args.port), Handler).serve_forever()
else:
    sys.exit(f"unknown command {command}")
"""


@pytest.fixture
def fake_service(tmp_path: Path) -> Path:
    """A package `studio_devfake` with the service CLI contract, and
    `studio_devhalf`, a package without one."""
    packages = tmp_path / "packages"
    (packages / "studio_devfake").mkdir(parents=True)
    (packages / "studio_devfake" / "__init__.py").write_text("")
    (packages / "studio_devfake" / "__main__.py").write_text(textwrap.dedent(FAKE_MAIN))
    (packages / "studio_devhalf").mkdir()
    (packages / "studio_devhalf" / "__init__.py").write_text("")
    (tmp_path / "state").mkdir()
    return packages


def child_env(tmp_path: Path, packages: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    env.update(
        PYTHONPATH=str(packages),
        DEVFAKE_STATE=str(tmp_path / "state"),
        STUDIO_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{E2E_DATABASE}",
        STUDIO_NATS_URL="nats://127.0.0.1:4222",
        **extra,
    )
    return env


async def drop_e2e_database() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {E2E_DATABASE} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
def clean_database() -> Iterator[None]:
    asyncio.run(drop_e2e_database())
    yield
    asyncio.run(drop_e2e_database())


def wait_for_json(port: int, path: str, http, timeout: float = 40.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            reply = http(port, "GET", path)
            if reply.status == 200:
                data: dict[str, object] = reply.json()
                return data
            last = (reply.status, reply.body[:200])
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{path} on {port} never answered 200: {last}")


def test_up_runs_the_stack_and_down_stops_it(
    tmp_path: Path,
    fake_service: Path,
    free_port: Callable[[], int],
    http,
    clean_database: None,
) -> None:
    service_port, half_port = free_port(), free_port()
    gateway_port, s3_port = free_port(), free_port()
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        textwrap.dedent(f"""
        services:
          devfake: {{port: {service_port}}}
          devhalf: {{port: {half_port}}}
        routes:
          - {{path: /api/fake, match: prefix, service: devfake}}
          - {{path: /api/half, match: prefix, service: devhalf}}
        """)
    )
    data_dir = tmp_path / "data"
    env = child_env(
        tmp_path, fake_service, STUDIO_PORT=str(gateway_port), STUDIO_S3_PORT=str(s3_port)
    )
    output = tmp_path / "up.log"
    with output.open("wb") as sink:
        up = subprocess.Popen(
            [*STUDIO_DEV, "up", "--routes", str(routes), "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        front = gateway_port if find_nginx() else service_port
        seen = wait_for_json(front, "/api/fake/items?x=1", http)
        assert seen["path"] == "/api/fake/items?x=1"
        assert seen["log"] == ["migrate", "serve"], "migrations run before the server starts"
        service_env = seen["env"]
        assert isinstance(service_env, dict)
        assert service_env["STUDIO_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{s3_port}"
        assert service_env["STUDIO_S3_BUCKET"] == "studio-anime"
        assert service_env["STUDIO_DATABASE_URL"].endswith(f"/{E2E_DATABASE}")
        assert service_env["STUDIO_ENVIRONMENT"] == "development"
        assert service_env["STUDIO_JWKS_URL"].endswith("/.well-known/jwks.json")

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
            region_name="us-east-1",
            aws_access_key_id="devstack",
            aws_secret_access_key="devstack-not-a-secret",
        )
        s3.head_bucket(Bucket="studio-anime")
        assert (data_dir / "devstack.pid").read_text().strip() == str(up.pid)
        if find_nginx():
            missing = http(gateway_port, "GET", "/api/half")
            assert missing.status == 502, "a skipped service's routes answer 502 problem+json"

        # The pid the log names is the service itself, not a shell around it:
        # `kill -9` of it is a crash, and the supervisor starts it again in place.
        found = re.search(r"devfake started \(pid=(\d+)\)", output.read_text())
        assert found, output.read_text()[-3000:]
        pid = int(found.group(1))
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        assert not program.endswith(b"sh"), program
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "devfake exited (rc=-9)" not in output.read_text():
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.2)
        seen = wait_for_json(front, "/api/fake/items?x=2", http)
        assert seen["path"] == "/api/fake/items?x=2"

        down = subprocess.run(
            [*STUDIO_DEV, "down", "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert up.wait(timeout=30) == 0, "a requested stop is a clean exit"
        for port in (service_port, gateway_port, s3_port):
            assert not tcp_reachable("127.0.0.1", port), f"port {port} still answers"
        assert not (data_dir / "devstack.pid").exists()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    log = output.read_text()
    assert "Postgres: using the server at 127.0.0.1:5432" in log
    assert "devhalf: skipped, studio_devhalf has no __main__ module yet" in log
    assert "devfake started" in log


def test_run_service_migrates_seeds_then_serves(
    tmp_path: Path,
    fake_service: Path,
    free_port: Callable[[], int],
    http,
    clean_database: None,
) -> None:
    port = free_port()
    # No local S3 endpoint: only Postgres and NATS are waited for.
    env = child_env(tmp_path, fake_service, STUDIO_S3_ENDPOINT_URL="http://s3.invalid")
    proc = subprocess.Popen(
        [*STUDIO_DEV, "run-service", "devfake", "--port", str(port), "--seed"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for_tcp("127.0.0.1", port, timeout=30)
        assert wait_for_json(port, "/", http)["log"] == ["migrate", "seed", "serve"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert "created the database" in out


def test_a_failing_migration_keeps_the_service_down(
    tmp_path: Path, fake_service: Path, free_port: Callable[[], int], clean_database: None
) -> None:
    main = fake_service / "studio_devfake" / "__main__.py"
    main.write_text('import sys\nsys.exit(7 if sys.argv[1] == "migrate" else 0)\n')
    env = child_env(tmp_path, fake_service, STUDIO_S3_ENDPOINT_URL="http://s3.invalid")
    result = subprocess.run(
        [*STUDIO_DEV, "run-service", "devfake", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 7
    assert "migrate failed with exit code 7" in result.stdout
