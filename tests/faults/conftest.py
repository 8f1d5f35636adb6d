"""Fault injection on private dependencies: never the machine's shared servers.

Each test that takes a dependency away starts its own instance on a free
loopback port and stops and restarts that one. ``STUDIO_FAULT_OUTAGE_SECONDS``
stretches the outages (``make faults-long`` holds NATS away for 5 minutes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import pytest

from studio_common.events import Envelope, EpisodeUploadedV1
from studio_common.testing.infra import free_port, reachable
from studio_common.testing.jetstream import publish_envelope
from studio_devstack.backing import PostgresTarget, PrivatePostgres, find_postgres_bindir
from studio_transcoder.config import TranscoderSettings

ROOT = Path(__file__).resolve().parents[2]


def outage_seconds(default: float) -> float:
    return float(os.environ.get("STUDIO_FAULT_OUTAGE_SECONDS") or default)


class PrivateNats:
    """A nats-server with JetStream on a free port, its store in a temp dir."""

    def __init__(self, store: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = store
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.skip("nats-server is not installed")
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError(f"private nats-server did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "jetstream", tmp_path / "nats-server.log")
    server.start()
    yield server
    server.stop()


class ServiceProcess:
    """``python -m studio_<service> serve`` on a free port, as the stack runs it."""

    def __init__(self, service: str, env: dict[str, str], log: Path) -> None:
        self.service = service
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"studio_{service}", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.service} exited: {self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.service} never became ready: {self.log.read_text()[-4000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def terminate(self, within: float) -> float | None:
        """SIGTERM; seconds until the process ended, or None if it outlived ``within``."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(within)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - start

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")


@dataclass
class PostgresCluster:
    """initdb + pg_ctl in a temp dir on a free loopback port."""

    server: PrivatePostgres
    log_file: Path

    @property
    def url(self) -> str:
        t = self.server.target
        return f"postgresql+asyncpg://{t.user}@{t.host}:{t.port}/{t.database}"

    @property
    def admin_url(self) -> str:
        t = self.server.target
        return f"postgresql://{t.user}@{t.host}:{t.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        t = self.server.target
        argv = [
            str(self.server.bindir / "pg_ctl"),
            "-D",
            str(self.server.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "30",
            "-o",
            f"-h {t.host} -p {t.port} -k ''",
            *args,
        ]
        subprocess.run(self.server._as_os_user(argv), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        # Fast shutdown: what a restart by an operator or an orchestrator does.
        self._pg_ctl("stop", "-m", "fast")


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    bindir = find_postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("no Postgres server binaries (initdb, pg_ctl)")
    # Not under pytest's tmp dir: Postgres may run as another user, who must
    # be able to enter the directory.
    base = Path(tempfile.mkdtemp(prefix="studio-faults-pg-"))
    base.chmod(0o755)
    target = PostgresTarget("127.0.0.1", free_port(), "postgres", "studio")
    cluster = PostgresCluster(PrivatePostgres(bindir, base / "data", target), base / "server.log")
    cluster.server.initialize()
    if cluster.server.os_user:
        shutil.chown(base, user=cluster.server.os_user)
    try:
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


async def publish_uploaded(settings: TranscoderSettings, source_key: str) -> uuid.UUID:
    """catalog.episode.uploaded for a source already in storage, as catalog sends it;
    returns the new episode's id."""
    event = EpisodeUploadedV1(
        episode_id=uuid.uuid4(),
        title_id=uuid.uuid4(),
        title_slug=f"show-{uuid.uuid4().hex[:8]}",
        season_id=uuid.uuid4(),
        season_number=1,
        episode_number=1,
        source_key=source_key,
    )
    env = Envelope.wrap(event)
    await publish_envelope(
        settings.nats_url,
        settings.event_subject_root,
        settings.event_stream,
        env,
        msg_id=str(env.id),
    )
    return event.episode_id


async def seed_playback_episode(dsn: str) -> uuid.UUID:
    """An episode as playback's projection holds it (normally fed by catalog's events)."""
    title_id, episode_id = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO playback.titles (id, slug, name, event_at) VALUES ($1, 'x', 'X', now())",
            title_id,
        )
        await conn.execute(
            "INSERT INTO playback.episodes (id, title_id, season_number, episode_number, "
            "duration_sec, event_at) VALUES ($1, $2, 1, 1, 1400, now())",
            episode_id,
            title_id,
        )
    finally:
        await conn.close()
    return episode_id
