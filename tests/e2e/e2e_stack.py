"""The stack the end-to-end tests (and the benchmarks) drive, over HTTP only.

Either a running stack named by ``STUDIO_E2E_GATEWAY_URL`` (CI's kind cluster),
or one started exactly as the README says, ``uv run studio-dev up``, as a
subprocess in its own process group, isolated from a developer's own stack:
every port shifted (``STUDIO_PORT_OFFSET``), its own data dir, database,
JetStream subject root and stream, rate-limit prefix and signing keys.

This module imports no service; it is used by ``tests/e2e/conftest.py`` and by
``bench/``.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
# The route table's ports, and the worker's metrics port (.env.example).
SERVICE_PORTS = {
    "catalog": 8101,
    "identity": 8102,
    "media": 8103,
    "transcoder": 8104,
    "playback": 8105,
}
WORKER_METRICS_PORT = 9104
GATEWAY_PORT = 8080
S3_PORT = 9000
STARTUP_TIMEOUT = float(os.environ.get("STUDIO_E2E_STARTUP_TIMEOUT", "180"))
STOP_TIMEOUT = 40.0
ADMIN_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
# A headless Chromium in a container, playing video without a click: the e2e
# tests and the time-to-playable benchmark.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--autoplay-policy=no-user-gesture-required",
]


class StackError(RuntimeError):
    """The stack did not come up (the message ends with its log tail)."""


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
        return True
    return False


def pick_port_offset(rng: random.Random | None = None) -> int:
    """An offset under which every port of the stack is free."""
    rng = rng or random.Random()
    for _ in range(200):
        offset = rng.randrange(100, 400) * 100  # 10000 .. 39900
        ports = [p + offset for p in (*SERVICE_PORTS.values(), WORKER_METRICS_PORT)]
        ports += [GATEWAY_PORT + offset, S3_PORT + offset]
        if all(_free(p) and not _answers(p) for p in ports):
            return offset
    raise StackError("no port offset with every port free")


@dataclass
class Stack:
    """A running stack as the tests see it.

    - ``gateway_url``: e.g. ``http://127.0.0.1:28080``; every request goes here.
    - ``env``: the environment the stack was started with (empty for an
      external stack): database, subject root, ports, signing key.
    - ``token(role, email=None)``: a bearer token from ``POST /api/dev/token``.
    - ``service_url(name)``: a service's own port (local stacks only), for
      ``/readyz`` and ``/metrics``; ``worker_metrics_url`` likewise.
    - ``log_tail(lines)``: the end of the stack's combined output.
    """

    gateway_url: str
    env: dict[str, str] = field(default_factory=dict)
    external: bool = False
    port_offset: int = 0
    log_path: Path | None = None
    data_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    # --- what tests use --------------------------------------------------------

    def token(self, role: str, email: str | None = None) -> str:
        email = email or f"{role}@e2e.studio.test"
        cached = self._tokens.get((role, email))
        if cached is not None:
            return cached
        r = httpx.post(
            f"{self.gateway_url}/api/dev/token",
            json={"email": email, "role": role},
            timeout=10,
        )
        r.raise_for_status()
        token: str = r.json()["token"]
        self._tokens[(role, email)] = token
        return token

    def headers(self, role: str, email: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, email)}"}

    def service_url(self, name: str) -> str:
        if self.external:
            raise StackError("an external stack's services are reachable through the gateway only")
        return f"http://127.0.0.1:{SERVICE_PORTS[name] + self.port_offset}"

    @property
    def worker_metrics_url(self) -> str:
        if self.external:
            raise StackError("an external stack's worker is not reachable")
        return f"http://127.0.0.1:{WORKER_METRICS_PORT + self.port_offset}/metrics"

    @property
    def playback_signing_key(self) -> str | None:
        """Known for a local stack (tests mint an expired token with it)."""
        return self.env.get("MEDIA_PLAYBACK_SIGNING_KEY") or None

    def log_tail(self, lines: int = 120) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no stack log: an external stack)"
        with self.log_path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    # --- life cycle -------------------------------------------------------------

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Every service ready, the worker up, the gateway and the issuer answering."""
        deadline = time.monotonic() + timeout
        pending: list[str] = []
        with httpx.Client(timeout=3) as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise StackError(
                        f"studio-dev up exited with {self.process.returncode} before the stack "
                        f"was ready\n--- stack log ---\n{self.log_tail()}"
                    )
                if not self._launched():
                    pending = ["studio-dev up to plan the stack (nothing logged yet)"]
                    time.sleep(0.5)
                    continue
                pending = [url for url in self._readiness_urls() if not _ok(http, url)]
                if not pending:
                    return
                time.sleep(0.5)
        raise StackError(
            f"the stack was not ready within {timeout:.0f} s; still waiting for {pending}\n"
            f"--- stack log ---\n{self.log_tail()}"
        )

    def _launched(self) -> bool:
        """Our own studio-dev got past its port check (so what answers is ours)."""
        if self.log_path is None:
            return True
        try:
            return "Try: curl" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def _readiness_urls(self) -> list[str]:
        urls = [f"{self.gateway_url}/api/titles", f"{self.gateway_url}/.well-known/jwks.json"]
        if not self.external:
            urls += [f"{self.service_url(name)}/readyz" for name in SERVICE_PORTS]
            if self.env.get("TRANSCODER_WORKER_METRICS_PORT") != "0":
                urls.append(self.worker_metrics_url)
        return urls

    def stop(self) -> int | None:
        """Ctrl-C for the whole process group, as in a terminal; then whatever is left."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Children that outlived honcho (none expected) share the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode


def _ok(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def isolated_env(
    data_dir: Path, offset: int, token: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What makes a stack private: ports, data, database, events, rate limits, keys."""
    gateway = GATEWAY_PORT + offset
    identity = f"http://127.0.0.1:{SERVICE_PORTS['identity'] + offset}"
    base_db = os.environ.get(
        "STUDIO_E2E_DATABASE_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432"
    )
    env = {
        "STUDIO_PORT_OFFSET": str(offset),
        "STUDIO_PORT": str(gateway),
        "STUDIO_S3_PORT": str(S3_PORT + offset),
        # Empty: the stack runs its own S3 stand-in on STUDIO_S3_PORT.
        "STUDIO_S3_ENDPOINT_URL": "",
        "STUDIO_S3_PUBLIC_ENDPOINT_URL": "",
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_ENVIRONMENT": "development",
        "STUDIO_DATABASE_URL": f"{base_db}/studio_e2e_{token}",
        "STUDIO_EVENT_SUBJECT_ROOT": f"e2e{token}",
        "STUDIO_EVENT_STREAM": f"E2E{token.upper()}",
        "STUDIO_JWKS_URL": f"{identity}/.well-known/jwks.json",
        "STUDIO_JWT_ISSUER": identity,
        "STUDIO_LOG_LEVEL": "INFO",
        "IDENTITY_DEV_KEY_PATH": str(data_dir / "identity" / "jwt-key.pem"),
        "MEDIA_RATE_LIMIT_PREFIX": f"studio:e2e{token}:rl",
        "MEDIA_PUBLIC_BASE_URL": f"http://127.0.0.1:{gateway}",
        "MEDIA_PLAYBACK_SIGNING_KEY": secrets.token_urlsafe(48),
        # Multipart with more than one part for a few-MB source.
        "MEDIA_MULTIPART_PART_SIZE": str(5 * 1024 * 1024),
        "TRANSCODER_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT + offset),
        "TRANSCODER_WORK_DIR": str(data_dir / "transcode"),
        "TRANSCODER_CDN_BASE_URL": "",
        # Progress is reported often enough to be seen on a job of a few seconds.
        "TRANSCODER_PROGRESS_INTERVAL_SECONDS": "0.5",
        "TRANSCODER_JOBS_GAUGE_REFRESH_SECONDS": "2",
    }
    env.update(overrides or {})
    return env


def studio_dev_up_argv() -> list[str]:
    """`uv run studio-dev up`, as the README says (the module itself without uv)."""
    uv = shutil.which("uv")
    if uv:
        return [uv, "run", "--frozen", "studio-dev", "up"]
    return [sys.executable, "-m", "studio_devstack", "up"]


def start_stack(overrides: Mapping[str, str] | None = None) -> Stack:
    """Start a private stack and wait until it is ready (stopped again on failure)."""
    token = uuid.uuid4().hex[:10]
    data_dir = Path(tempfile.mkdtemp(prefix=f"studio-e2e-{token}-"))
    (data_dir / "transcode").mkdir()
    offset = pick_port_offset()
    env = isolated_env(data_dir, offset, token, overrides)
    # The developer's own STUDIO_*/service settings stay out; the rest (PATH, uv) stays.
    prefixes = ("STUDIO_", "CATALOG_", "IDENTITY_", "MEDIA_", "TRANSCODER_", "PLAYBACK_")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    child_env.update(env)
    child_env.setdefault(
        "STUDIO_NATS_URL", os.environ.get("STUDIO_NATS_URL", "nats://127.0.0.1:4222")
    )
    child_env.setdefault(
        "STUDIO_REDIS_URL", os.environ.get("STUDIO_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    env.setdefault("STUDIO_NATS_URL", child_env["STUDIO_NATS_URL"])
    log_path = data_dir / "stack.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        studio_dev_up_argv(),
        cwd=ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    stack = Stack(
        gateway_url=f"http://127.0.0.1:{GATEWAY_PORT + offset}",
        env=env,
        port_offset=offset,
        log_path=log_path,
        data_dir=data_dir,
        process=process,
    )
    try:
        stack.wait_ready()
    except BaseException:
        stack.stop()
        cleanup(stack)
        raise
    return stack


def external_stack(gateway_url: str) -> Stack:
    stack = Stack(gateway_url=gateway_url.rstrip("/"), external=True)
    stack.wait_ready()
    return stack


def cleanup(stack: Stack, *, keep_data: bool = False) -> None:
    """Drop the stack's database and stream; remove its data dir (not its log, if kept)."""
    if stack.external:
        return
    import asyncio

    asyncio.run(_drop(stack.env))
    if stack.data_dir is not None and not keep_data:
        shutil.rmtree(stack.data_dir, ignore_errors=True)


async def _drop(env: Mapping[str, str]) -> None:
    import asyncpg
    import nats
    from nats.js.errors import NotFoundError

    database = env.get("STUDIO_DATABASE_URL", "").rsplit("/", 1)[-1]
    if database.startswith("studio_e2e_"):
        admin = os.environ.get("STUDIO_E2E_ADMIN_DATABASE_URL", ADMIN_DATABASE)
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(admin, timeout=5)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await conn.close()
    stream = env.get("STUDIO_EVENT_STREAM", "")
    if stream.startswith("E2E"):
        with contextlib.suppress(Exception):
            nc = await nats.connect(env.get("STUDIO_NATS_URL", "nats://127.0.0.1:4222"))
            try:
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().delete_stream(stream)
            finally:
                await nc.close()


def stack_from_environment(overrides: Mapping[str, str] | None = None) -> Stack:
    gateway = os.environ.get("STUDIO_E2E_GATEWAY_URL", "").strip()
    return external_stack(gateway) if gateway else start_stack(overrides)


def describe(stack: Stack) -> dict[str, Any]:
    return {
        "gateway_url": stack.gateway_url,
        "external": stack.external,
        "port_offset": stack.port_offset,
        "log": str(stack.log_path) if stack.log_path else None,
    }
