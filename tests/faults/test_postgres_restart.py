"""A Postgres restart under load: every answer is a 200, or a 503 with
Retry-After while the database is away; never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from studio_catalog.config import CatalogSettings
from studio_catalog.main import create_app as create_catalog
from studio_common.migrations import upgrade
from studio_common.testing.plugin import Auth, serve_app
from studio_playback.config import PlaybackSettings
from studio_playback.main import create_app as create_playback

from .conftest import seed_playback_episode

ROOT = Path(__file__).resolve().parents[2]
# A burst first fills the pools, then a steady trickle leaves most of their
# connections idle when the server goes: a request then meets two dead ones in
# a row, the case that used to surface as a 500.
BURST = 12


# 0: a restart as pg_ctl restart does it; 2: long enough that new connections
# are refused too.
@pytest.mark.parametrize("down_seconds", [0.0, 2.0])
async def test_a_postgres_restart_under_load_gives_no_500(
    private_postgres: Any, service_settings: dict[str, Any], auth: Auth, down_seconds: float
) -> None:
    admin = await asyncpg.connect(private_postgres.admin_url)
    await admin.execute("CREATE DATABASE studio")
    await admin.close()
    for service in ("catalog", "playback"):
        await asyncio.to_thread(upgrade, ROOT / "services" / service, private_postgres.url)
    episode_id = await seed_playback_episode(
        private_postgres.admin_url.rsplit("/", 1)[0] + "/studio"
    )
    settings = {**service_settings, "database_url": private_postgres.url, "database_pool_size": 8}
    viewer = auth.headers("viewer")

    seen: Counter[tuple[str, int]] = Counter()
    bad: list[str] = []
    last_ok: dict[str, float] = {}
    back = float("inf")  # when the server was started again
    recovered = asyncio.Event()

    async def hit(name: str, client: httpx.AsyncClient, n: int) -> None:
        if name == "titles":
            reply = await client.get("/api/titles")
        else:
            body = {"episodeId": str(episode_id), "positionSec": n % 1400, "sequence": n}
            reply = await client.post("/api/playback", json=body, headers=viewer)
        seen[(name, reply.status_code)] += 1
        if reply.status_code == 200:
            last_ok[name] = time.monotonic()
            if all(last_ok.get(n, 0) > back + 2 for n in ("titles", "positions")):
                recovered.set()
        elif reply.status_code != 503 or not reply.headers.get("retry-after"):
            bad.append(f"{name}: {reply.status_code} {reply.text[:300]}")

    async with (
        serve_app(create_catalog(CatalogSettings(**settings))) as catalog,
        serve_app(create_playback(PlaybackSettings(**settings))) as playback,
    ):
        stop = asyncio.Event()
        counter = iter(range(1, 10**9))

        async def load(name: str, client: httpx.AsyncClient, burst: int) -> None:
            await asyncio.gather(*(hit(name, client, next(counter)) for _ in range(burst)))
            while not stop.is_set():
                await hit(name, client, next(counter))
                await asyncio.sleep(0.02)

        workers = [
            asyncio.create_task(load(name, client, burst))
            for name, client in (("titles", catalog), ("positions", playback))
            for burst in (BURST, 0)
        ]
        try:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(private_postgres.stop)
            await asyncio.sleep(down_seconds)
            await asyncio.to_thread(private_postgres.start)
            back = time.monotonic()
            # Bounded: both endpoints must answer 200 again within 20 s.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recovered.wait(), 20)
        finally:
            stop.set()
            await asyncio.gather(*workers, return_exceptions=True)

    assert not bad, f"{len(bad)} answers neither 200 nor 503 with Retry-After: {bad[:3]} {seen}"
    assert seen[("titles", 503)] + seen[("positions", 503)] > 0, f"the outage was missed: {seen}"
    for name in ("titles", "positions"):
        assert last_ok.get(name, 0) > back, f"{name} never answered 200 after the restart: {seen}"
