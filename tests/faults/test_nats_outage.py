"""NATS away for longer than nats-py's default reconnect budget.

nats-py gives up after 60 reconnects (2 s apart by default) and closes the
connection for good; the services' pull loop (FastStream's, before ADR 10) then
spun on the closed connection at 100 % CPU, and the process answered nothing,
not even SIGTERM. Here the
reconnect waits are shrunk (``NATS_RECONNECT_MAX_SECONDS``) so that 60 attempts
fit well inside the outage: a client that still had a reconnect budget would
give up during it. ``make faults-long`` runs the same with 5 minutes and the
default waits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import nats
import pytest

from studio_common.auth import Role
from studio_common.events import subject_for
from studio_common.migrations import upgrade
from studio_common.roles import RoleRecord, open_bucket, role_bucket, write_role
from studio_common.testing.infra import free_port, scratch_database
from studio_common.testing.issuer import TestIssuer
from studio_common.testing.jetstream import envelope_of, stream_messages, wait_until
from studio_common.testing.plugin import Auth

from .conftest import ROOT, PrivateNats, ServiceProcess, outage_seconds

# Old default budget: 60 attempts; at <= 0.3 s apart they end within ~20 s.
RECONNECT_MAX_SECONDS = "0.3"
# A process doing nothing but waiting uses a few percent of a core at most;
# one spinning on a closed connection uses all of it.
MAX_CPU_SHARE = 0.35
SIGTERM_WITHIN = 10.0


@pytest.fixture
async def catalog_db(pg_admin_url: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_url, "studio_fault") as url:
        await asyncio.to_thread(upgrade, ROOT / "services" / "catalog", url)
        yield url


def catalog_env(
    database_url: str, nats: PrivateNats, issuer: TestIssuer, root: str, reconnect_max: str
) -> dict[str, str]:
    values = {
        "environment": "test",
        "database_url": database_url,
        "nats_url": nats.url,
        "nats_reconnect_max_seconds": reconnect_max,
        "event_subject_root": root,
        "event_stream": root.upper(),
        "jwks_url": issuer.jwks_url,
        "jwt_issuer": issuer.issuer,
        "jwt_audience": issuer.audience,
        "jwks_min_refetch_seconds": "0",
        "outbox_poll_interval": "0.2",
        "metrics_refresh_seconds": "1",
        "database_pool_size": "3",
        "log_json": "false",
        "gc_freeze": "false",
    }
    return {f"CATALOG_{k.upper()}": str(v) for k, v in values.items()}


@pytest.fixture
def catalog(
    catalog_db: str, private_nats: PrivateNats, test_issuer: TestIssuer, tmp_path: Any
) -> Any:
    root = f"fault{uuid.uuid4().hex[:8]}"
    reconnect_max = (
        "10" if outage_seconds(0) >= 120 else RECONNECT_MAX_SECONDS
    )  # the long run keeps the real waits
    proc = ServiceProcess(
        "catalog",
        catalog_env(catalog_db, private_nats, test_issuer, root, reconnect_max),
        tmp_path / "catalog.log",
    )
    proc.root = root  # type: ignore[attr-defined]
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.close()


async def _create_title(client: httpx.AsyncClient, auth: Auth) -> str:
    body = {"slug": f"outage-{uuid.uuid4().hex[:10]}", "name": "Outage Show", "type": "series"}
    r = await client.post("/api/admin/titles", json=body, headers=auth.editor)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _titles_created(nats_url: str, root: str) -> Counter[str]:
    msgs = await stream_messages(nats_url, root.upper(), subject_for(root, "catalog.title.created"))
    return Counter(envelope_of(m)["data"]["titleId"] for m in msgs)


async def test_services_serve_through_a_long_nats_outage_and_deliver_every_event_once(
    catalog: ServiceProcess, private_nats: PrivateNats, auth: Auth
) -> None:
    outage = outage_seconds(30.0)
    root: str = catalog.root  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=catalog.base_url, timeout=10) as client:
        before = [await _create_title(client, auth) for _ in range(3)]

        private_nats.stop()
        cpu_start, wall_start = catalog.cpu_seconds(), time.monotonic()
        during: list[str] = []
        nats_states: set[str] = set()
        while time.monotonic() - wall_start < outage:
            during.append(await _create_title(client, auth))
            listed = await client.get("/api/titles", params={"pageSize": 5})
            assert listed.status_code == 200, listed.text
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            nats_states.add(ready.json()["checks"]["nats"])
            await asyncio.sleep(1.0)
        cpu_share = (catalog.cpu_seconds() - cpu_start) / (time.monotonic() - wall_start)
        assert cpu_share < MAX_CPU_SHARE, f"{cpu_share:.0%} of a core while NATS was away"
        assert "reconnecting" in nats_states
        metrics = (await client.get("/metrics")).text
        assert 'studio_nats_connected{service="catalog"} 0.0' in metrics

        private_nats.start()
        written = before + during

        async def all_published() -> Counter[str] | None:
            seen = await _titles_created(private_nats.url, root)
            return seen if all(seen[t] for t in written) else None

        seen = await wait_until(all_published, within=30, interval=0.5)
        assert {t: seen[t] for t in written} == dict.fromkeys(written, 1)
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["nats"] == "ok"
        await _role_watch_resumed(private_nats.url, root, client, auth)
        assert 'studio_nats_connected{service="catalog"} 1.0' in (await client.get("/metrics")).text

    await _consumers_resumed(private_nats.url, root)
    log = catalog.output()
    # One line per state change, not one per attempt.
    assert log.count("NATS disconnected") == 1, log[-3000:]
    assert log.count("NATS reconnected") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


async def _role_watch_resumed(
    nats_url: str, root: str, client: httpx.AsyncClient, auth: Auth
) -> None:
    """A demotion written after the outage still reaches catalog (ADR 7): its
    watch of the role bucket was re-established with the connection."""
    subject = f"editor_{uuid.uuid4().hex[:8]}"
    editor = auth.headers("editor", sub=subject)
    body = {"slug": f"demoted-{uuid.uuid4().hex[:8]}", "name": "Demoted", "type": "series"}
    nc = await nats.connect(nats_url)
    try:
        kv = await open_bucket(nc.jetstream(), role_bucket(root.upper()))
        await write_role(kv, subject, RoleRecord(Role.viewer, 1))
    finally:
        await nc.close()

    async def refused() -> bool:
        r = await client.post("/api/admin/titles", json=body, headers=editor)
        assert r.status_code in (201, 403), r.text
        if r.status_code == 201:
            body["slug"] = f"demoted-{uuid.uuid4().hex[:8]}"
        return r.status_code == 403

    await wait_until(refused, within=45, interval=1.0)


async def _consumers_resumed(nats_url: str, root: str) -> None:
    """Catalog's consumers fetch again: an unreadable message on one of them is
    taken and dead-lettered (acked) within seconds."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        consumers = await js.consumers_info(root.upper())
        durable = next(c for c in consumers if c.name.startswith("catalog-"))
        assert durable.config.filter_subject is not None
        ack = await js.publish(durable.config.filter_subject, b"not an envelope")

        async def taken() -> bool:
            info = await js.consumer_info(root.upper(), durable.name)
            return info.ack_floor.stream_seq >= ack.seq

        await wait_until(taken, within=20, interval=0.3)
    finally:
        await nc.close()


async def test_sigterm_during_a_nats_outage_stops_the_service(
    catalog: ServiceProcess, private_nats: PrivateNats
) -> None:
    private_nats.stop()
    # Past the point where a client with the old budget would have closed.
    await asyncio.sleep(outage_seconds(15.0) if outage_seconds(0) < 120 else 150)
    async with httpx.AsyncClient(base_url=catalog.base_url, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200
    took = catalog.terminate(SIGTERM_WITHIN)
    assert took is not None, f"still running {SIGTERM_WITHIN} s after SIGTERM"
    # uvicorn ends by re-raising the SIGTERM it handled.
    assert catalog.proc.returncode in (0, -15), catalog.output()[-3000:]


async def test_a_service_started_while_nats_is_away_gives_up_instead_of_hanging(
    catalog_db: str, test_issuer: TestIssuer, tmp_path: Any
) -> None:
    """Retrying the first connection forever would leave a process that never
    finishes starting and, under uvicorn, ignores SIGTERM."""
    nowhere = SimpleNamespace(url=f"nats://127.0.0.1:{free_port()}")
    env = catalog_env(catalog_db, nowhere, test_issuer, "faultstart", RECONNECT_MAX_SECONDS)  # type: ignore[arg-type]
    env["CATALOG_NATS_STARTUP_WAIT_SECONDS"] = "3"
    proc = ServiceProcess("catalog", env, tmp_path / "catalog.log")
    try:
        # Generous: starting Python under a loaded machine alone can take 20 s.
        code = await asyncio.to_thread(proc.proc.wait, 60)
        assert code != 0
        log = proc.output()
        assert log.count("NATS not reachable; waiting for it") == 1, log[-3000:]
        assert "NATS did not answer within 3 s" in log
    finally:
        proc.close()
