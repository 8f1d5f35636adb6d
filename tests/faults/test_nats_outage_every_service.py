"""Every API service through one long NATS outage, as a stack runs them.

Catalog, identity, media and playback each run as their own process on one
private NATS and one database. While NATS is away each keeps answering reads
and writes (the writes' events wait in the outboxes), stays ready, and idles;
once NATS is back the held events reach the stream within seconds, each once.
``make faults-long`` holds NATS away for 5 minutes with the default reconnect
waits; ``make test`` for 30 s with waits shrunk so that nats-py's old budget of
60 attempts would have run out during it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from studio_common.events import subject_for
from studio_common.migrations import upgrade
from studio_common.testing.infra import scratch_database
from studio_common.testing.issuer import TestIssuer
from studio_common.testing.jetstream import envelope_of, stream_messages, wait_until
from studio_common.testing.plugin import Auth
from studio_common.testing.s3 import s3_with_bucket

from .conftest import ROOT, PrivateNats, ServiceProcess, outage_seconds, seed_playback_episode

SERVICES = ("catalog", "identity", "media", "playback")
LONG = outage_seconds(0) >= 120
OUTAGE_SECONDS = outage_seconds(30.0)
# Old default budget: 60 attempts; at <= 0.3 s apart they end within ~20 s.
RECONNECT_MAX_SECONDS = "10" if LONG else "0.3"
# Idle processes use a few percent of a core; one spinning on a dead
# connection uses all of it.
MAX_CPU_SHARE = 0.35
BUCKET = "faults-every-service"

pytestmark = pytest.mark.timeout(300 + 2 * OUTAGE_SECONDS)


@pytest.fixture
async def stack_db(pg_admin_url: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_url, "studio_fault") as url:
        for service in SERVICES:
            await asyncio.to_thread(upgrade, ROOT / "services" / service, url)
        yield url


def _env(service: str, common: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    return {f"{service.upper()}_{k.upper()}": v for k, v in {**common, **own}.items()}


@pytest.fixture
def services(
    stack_db: str,
    private_nats: PrivateNats,
    test_issuer: TestIssuer,
    s3_endpoint_url: str,
    tmp_path: Path,
) -> Iterator[dict[str, ServiceProcess]]:
    root = f"every{uuid.uuid4().hex[:8]}"
    s3_with_bucket(s3_endpoint_url, BUCKET)
    common = {
        "environment": "test",
        "database_url": stack_db,
        "database_pool_size": "2",
        "nats_url": private_nats.url,
        "nats_reconnect_max_seconds": RECONNECT_MAX_SECONDS,
        "event_subject_root": root,
        "event_stream": root.upper(),
        "jwks_url": test_issuer.jwks_url,
        "jwt_issuer": test_issuer.issuer,
        "jwt_audience": test_issuer.audience,
        "jwks_min_refetch_seconds": "0",
        "outbox_poll_interval": "0.2",
        "metrics_refresh_seconds": "1",
        "log_json": "false",
        "gc_freeze": "false",
    }
    own: dict[str, dict[str, str]] = {
        "catalog": {},
        "identity": {"dev_key_path": str(tmp_path / "identity" / "jwt-key.pem")},
        "media": {
            "s3_endpoint_url": s3_endpoint_url,
            "s3_bucket": BUCKET,
            "s3_access_key_id": "test",
            "s3_secret_access_key": "test-secret",
            "rate_limit_prefix": f"{root}:rl",
            "presign_rate_limit": "100000",
            "playback_signing_key": "fault-test-signing-key-" + "x" * 32,
            "public_base_url": "http://media.test",
        },
        "playback": {},
    }
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            procs[name] = ServiceProcess(
                name, _env(name, common, own[name]), tmp_path / f"{name}.log"
            )
        for proc in procs.values():
            proc.wait_ready(within=300)
        for proc in procs.values():
            proc.root = root  # type: ignore[attr-defined]
        yield procs
    finally:
        for proc in procs.values():
            proc.close()


class Writes:
    """One write and one read on each service; every answer is checked."""

    def __init__(self, procs: dict[str, ServiceProcess], auth: Auth, episode: uuid.UUID) -> None:
        self.procs, self.auth, self.episode = procs, auth, episode
        self.titles: list[str] = []
        self.users: list[str] = []
        self.count = 0

    async def round(self, client: httpx.AsyncClient) -> None:
        self.count += 1
        url = {name: proc.base_url for name, proc in self.procs.items()}
        editor = self.auth.editor

        body = {"slug": f"outage-{uuid.uuid4().hex[:10]}", "name": "Outage", "type": "series"}
        r = await client.post(f"{url['catalog']}/api/admin/titles", json=body, headers=editor)
        assert r.status_code == 201, r.text
        self.titles.append(r.json()["id"])
        r = await client.get(f"{url['catalog']}/api/titles", params={"pageSize": 5})
        assert r.status_code == 200, r.text

        # A subject identity has not seen: /api/me creates it (a write, and an event).
        subject = f"user_{uuid.uuid4().hex[:12]}"
        r = await client.get(
            f"{url['identity']}/api/me", headers=self.auth.headers("viewer", subject)
        )
        assert r.status_code == 200, r.text
        self.users.append(r.json()["id"])

        presign = {
            "kind": "source",
            "filename": "episode.mp4",
            "contentType": "video/mp4",
            "size": 1024,
        }
        r = await client.post(f"{url['media']}/api/admin/presign", json=presign, headers=editor)
        assert r.status_code in (200, 201), r.text
        r = await client.get(f"{url['media']}/api/admin/uploads/accepted-types", headers=editor)
        assert r.status_code == 200, r.text

        viewer = self.auth.headers("viewer")
        position = {
            "episodeId": str(self.episode),
            "positionSec": self.count,
            "sequence": self.count,
        }
        r = await client.post(f"{url['playback']}/api/playback", json=position, headers=viewer)
        assert r.status_code == 200, r.text
        r = await client.get(f"{url['playback']}/api/playback/{self.episode}", headers=viewer)
        assert r.status_code == 200, r.text
        assert r.json()["positionSec"] == self.count


async def _published(nats_url: str, root: str, event_type: str, key: str) -> Counter[str]:
    msgs = await stream_messages(nats_url, root.upper(), subject_for(root, event_type))
    return Counter(str(envelope_of(m)["data"][key]) for m in msgs)


async def test_every_service_takes_reads_and_writes_through_a_long_nats_outage(
    services: dict[str, ServiceProcess], private_nats: PrivateNats, auth: Auth, stack_db: str
) -> None:
    root: str = services["catalog"].root  # type: ignore[attr-defined]
    episode = await seed_playback_episode(stack_db.replace("postgresql+asyncpg", "postgresql"))
    writes = Writes(services, auth, episode)
    async with httpx.AsyncClient(timeout=10) as client:
        await writes.round(client)

        private_nats.stop()
        cpu = {name: proc.cpu_seconds() for name, proc in services.items()}
        start = time.monotonic()
        states: dict[str, set[str]] = {name: set() for name in services}
        while time.monotonic() - start < OUTAGE_SECONDS:
            await writes.round(client)
            for name, proc in services.items():
                assert (await client.get(f"{proc.base_url}/healthz")).status_code == 200
                ready = await client.get(f"{proc.base_url}/readyz")
                assert ready.status_code == 200, f"{name}: {ready.text}"
                states[name].add(ready.json()["checks"]["nats"])
            await asyncio.sleep(2.0)
        wall = time.monotonic() - start
        for name, proc in services.items():
            share = (proc.cpu_seconds() - cpu[name]) / wall
            assert share < MAX_CPU_SHARE, f"{name} used {share:.0%} of a core while NATS was away"
            assert "reconnecting" in states[name], f"{name}: {states[name]}"

        private_nats.start()
        back = time.monotonic()

        async def all_published() -> tuple[Counter[str], Counter[str]] | None:
            titles = await _published(private_nats.url, root, "catalog.title.created", "titleId")
            users = await _published(private_nats.url, root, "identity.user.created", "userId")
            if all(titles[t] for t in writes.titles) and all(users[u] for u in writes.users):
                return titles, users
            return None

        titles, users = await wait_until(all_published, within=30, interval=0.5)
        flowed = time.monotonic() - back
        # Each event once: the outbox relay and the stream's duplicate window.
        assert {t: titles[t] for t in writes.titles} == dict.fromkeys(writes.titles, 1)
        assert {u: users[u] for u in writes.users} == dict.fromkeys(writes.users, 1)
        assert flowed < 30
        for proc in services.values():

            async def nats_ok(proc: ServiceProcess = proc) -> bool:
                ready = await client.get(f"{proc.base_url}/readyz")
                return ready.status_code == 200 and ready.json()["checks"]["nats"] == "ok"

            await wait_until(nats_ok, within=30, interval=0.5)
        # And the services keep working with NATS back.
        await writes.round(client)

    for name, proc in services.items():
        log = proc.output()
        assert log.count("NATS disconnected") == 1, f"{name}: {log[-3000:]}"
        assert log.count("NATS reconnected") == 1, f"{name}: {log[-3000:]}"
        assert "Traceback" not in log, f"{name}: {log[-3000:]}"
