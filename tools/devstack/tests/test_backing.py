"""Choosing between a running server and a private one, and running the private ones."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import asyncpg
import nats
import pytest

from studio_devstack.backing import (
    BackingServiceUnavailable,
    PostgresTarget,
    PrivateNats,
    PrivatePostgres,
    Source,
    choose_source,
    ensure_database,
    find_nats_server,
    find_postgres_bindir,
    tcp_reachable,
    wait_for_tcp,
)
from studio_devstack.settings import host_and_port


def test_a_server_that_answers_is_used_even_without_binaries() -> None:
    source = choose_source("NATS", "10.0.0.5", 4222, reachable=True, private_binary=None)
    assert source is Source.EXTERNAL


def test_a_silent_local_address_gets_a_private_server() -> None:
    source = choose_source(
        "Postgres", "127.0.0.1", 5432, reachable=False, private_binary="/usr/bin/initdb"
    )
    assert source is Source.PRIVATE
    assert (
        choose_source("NATS", "localhost", 4222, reachable=False, private_binary="nats-server")
        is Source.PRIVATE
    )


def test_a_silent_remote_server_is_an_error_not_a_private_stand_in() -> None:
    with pytest.raises(BackingServiceUnavailable, match="only stand in for an address on this"):
        choose_source("Postgres", "db.internal", 5432, reachable=False, private_binary="initdb")


def test_no_server_and_no_binary_says_how_to_get_one() -> None:
    with pytest.raises(BackingServiceUnavailable, match="--extra private-servers"):
        choose_source("NATS", "127.0.0.1", 4222, reachable=False, private_binary=None)
    with pytest.raises(BackingServiceUnavailable, match="apt-get install -y redis-server"):
        choose_source(
            "Redis",
            "127.0.0.1",
            6379,
            reachable=False,
            private_binary=None,
            install_hint="apt-get install -y redis-server",
        )


def test_postgres_target_from_service_url() -> None:
    target = PostgresTarget.from_url("postgresql+asyncpg://app%40x@db.test:6543/studio_dev")
    assert target == PostgresTarget(host="db.test", port=6543, user="app@x", database="studio_dev")
    assert PostgresTarget.from_url("postgresql://127.0.0.1/") == PostgresTarget(
        "127.0.0.1", 5432, "postgres", "postgres"
    )
    with pytest.raises(ValueError, match="not a postgresql"):
        PostgresTarget.from_url("nats://127.0.0.1:4222")


def test_host_and_port() -> None:
    assert host_and_port("nats://127.0.0.1:14222", 4222) == ("127.0.0.1", 14222)
    assert host_and_port("nats://nats.test", 4222) == ("nats.test", 4222)
    with pytest.raises(ValueError, match="names no host"):
        host_and_port("nats://", 4222)


def test_tcp_reachable_tells_a_listener_from_a_closed_port(free_port: Callable[[], int]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert tcp_reachable("127.0.0.1", listener.getsockname()[1])
    assert not tcp_reachable("127.0.0.1", free_port())


@pytest.mark.skipif(find_nats_server() is None, reason="no nats-server binary")
async def test_private_nats_runs_jetstream(tmp_path: Path, free_port: Callable[[], int]) -> None:
    binary = find_nats_server()
    assert binary is not None
    port = free_port()
    private = PrivateNats(binary, tmp_path / "nats", "127.0.0.1", port)
    private.initialize()
    proc = await asyncio.create_subprocess_exec(
        *private.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert await asyncio.to_thread(wait_for_tcp, "127.0.0.1", port, 10)
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        try:
            js = nc.jetstream()
            await js.add_stream(name="DEVSTACK", subjects=["devstack.>"])
            ack = await js.publish("devstack.check", b"hello")
            assert ack.seq == 1
        finally:
            await nc.close()
        assert private.pid_file.read_text().strip() == str(proc.pid)
        assert (tmp_path / "nats" / "jetstream").is_dir()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@pytest.mark.skipif(find_postgres_bindir() is None, reason="no Postgres server binaries")
async def test_private_postgres_initialises_starts_and_gets_its_database(
    free_port: Callable[[], int],
) -> None:
    bindir = find_postgres_bindir()
    assert bindir is not None
    # Under root the server runs as another user, who must be able to reach the data dir.
    with tempfile.TemporaryDirectory(prefix="devstack-pg-") as parent:
        os.chmod(parent, 0o755)  # noqa: S103 - the server's user must be able to enter it
        port = free_port()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/studio_private"
        pg = PrivatePostgres(bindir, Path(parent) / "postgres", PostgresTarget.from_url(url))
        await asyncio.to_thread(pg.initialize)
        assert pg.initialized
        await asyncio.to_thread(pg.initialize)  # a second run keeps the cluster
        proc = await asyncio.create_subprocess_exec(
            *pg.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            assert await ensure_database(url, wait_seconds=30) is True
            assert await ensure_database(url, wait_seconds=30) is False
            # Every service process does this at once when the stack starts.
            racing = url.replace("/studio_private", "/studio_race")
            created = await asyncio.gather(*(ensure_database(racing) for _ in range(6)))
            assert sorted(created) == [False] * 5 + [True]
            conn = await asyncpg.connect(
                host="127.0.0.1", port=port, user="postgres", database="studio_private"
            )
            try:
                assert await conn.fetchval("SELECT current_database()") == "studio_private"
            finally:
                await conn.close()
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
