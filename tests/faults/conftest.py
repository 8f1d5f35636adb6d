"""A private Postgres cluster that a test may stop and start at will."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from studio_common.testing.infra import free_port
from studio_devstack.backing import PostgresTarget, PrivatePostgres, find_postgres_bindir


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
