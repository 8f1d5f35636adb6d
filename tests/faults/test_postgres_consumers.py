"""Events that arrive while Postgres is away are applied once it is back.

Before, a handler failing on the absent database used up one of its five
deliveries (1 s, 2 s, 4 s, 8 s apart), so any outage longer than ~15 s
dead-lettered every event that arrived during it: projections then missed
them for good. The consumer now waits for the database without counting the
attempt, and says so once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from studio_common.events import Envelope, TitleCreatedV1, dead_letter_subject
from studio_common.migrations import upgrade
from studio_common.testing.jetstream import publish_envelope, stream_messages, wait_until
from studio_common.testing.plugin import EventNamespace, serve_app
from studio_playback.config import PlaybackSettings
from studio_playback.main import create_app as create_playback

from .conftest import outage_seconds

ROOT = Path(__file__).resolve().parents[2]
# Past the old budget of five deliveries (1 + 2 + 4 + 8 s of backoff).
OUTAGE_SECONDS = outage_seconds(25.0) if outage_seconds(0) < 120 else 120.0

pytestmark = pytest.mark.timeout(120 + 2 * OUTAGE_SECONDS)


async def _publish(nats_url: str, ns: EventNamespace, payload: TitleCreatedV1) -> None:
    env = Envelope.wrap(payload)
    await publish_envelope(nats_url, ns.subject_root, ns.stream, env, msg_id=str(env.id))


def _title(tag: str) -> TitleCreatedV1:
    return TitleCreatedV1(title_id=uuid.uuid4(), slug=f"{tag}-{uuid.uuid4().hex[:6]}", name=tag)


async def test_events_during_a_postgres_outage_are_applied_after_it_not_dead_lettered(
    private_postgres: Any,
    service_settings: dict[str, Any],
    event_namespace: EventNamespace,
    nats_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    admin = await asyncpg.connect(private_postgres.admin_url)
    await admin.execute("CREATE DATABASE studio")
    await admin.close()
    await asyncio.to_thread(upgrade, ROOT / "services" / "playback", private_postgres.url)
    settings = {**service_settings, "database_url": private_postgres.url}
    studio_url = private_postgres.admin_url.rsplit("/", 1)[0] + "/studio"

    async def titles_known(ids: list[uuid.UUID]) -> bool:
        conn = await asyncpg.connect(studio_url)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM playback.titles WHERE id = ANY($1::uuid[])", ids
            )
        finally:
            await conn.close()
        return int(found) == len(ids)

    async with serve_app(create_playback(PlaybackSettings(**settings))):
        first = _title("before")
        await _publish(nats_url, event_namespace, first)
        await wait_until(lambda: titles_known([first.title_id]), within=30, interval=0.3)

        await asyncio.to_thread(private_postgres.stop)
        during = [_title("during") for _ in range(3)]
        for title in during:
            await _publish(nats_url, event_namespace, title)
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(private_postgres.start)

        # Within seconds of the database answering (the wait is at most 10 s).
        await wait_until(
            lambda: titles_known([t.title_id for t in during]), within=30, interval=0.5
        )

    dlq = dead_letter_subject(
        event_namespace.subject_root, "playback-catalog-title-created", "catalog.title.created"
    )
    assert await stream_messages(nats_url, event_namespace.stream, dlq) == []
    text = caplog.text
    assert "handler failed" not in text, text[-3000:]
    assert text.count("the database is unavailable; holding events") == 1, text[-3000:]
    assert text.count("the database answers again; consuming events") == 1, text[-3000:]
