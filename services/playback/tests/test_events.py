"""Catalog, transcoder and identity events → playback, against the real servers.

Every deletion event is published twice: once more with the same envelope (a
redelivery the inbox drops) and once as a new envelope (a second event that the
handler must absorb on its own).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from studio_common.events import (
    Envelope,
    EpisodeDeletedV1,
    EpisodeMarker,
    EpisodeMarkersChangedV1,
    TitleCreatedV1,
    TitleDeletedV1,
    TitleUpdatedV1,
    UserDeletedV1,
    dead_letter_subject,
)
from studio_common.testing.jetstream import envelope_of, stream_messages, wait_until
from studio_playback.models import messaging


async def inbox_count(runtime, event_id) -> int:
    async with runtime.database.transaction() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(messaging.inbox)
                .where(messaging.inbox.c.event_id == event_id)
            )
        )


async def publish_thrice(catalog, runtime, payload):
    """The event, the same envelope again, and a new envelope with the same data."""
    first = await catalog.publish(payload)
    await catalog.publish(payload, envelope=first)
    second = await catalog.publish(payload)
    await wait_until(lambda: inbox_count(runtime, second.id))
    await wait_until(lambda: inbox_count(runtime, first.id))
    assert await inbox_count(runtime, first.id) == 1
    return first


async def counts(sql, **where):
    out = {}
    for table, column in (
        ("favorites", "user_id"),
        ("positions", "user_id"),
    ):
        rows = await sql(
            f"SELECT count(*) AS n FROM playback.{table} WHERE {column} = :v",  # noqa: S608
            v=where["user"],
        )
        out[table] = rows[0]["n"]
    return out


async def test_title_deletion_erases_favorites_positions_and_projection(
    client, catalog, users, runtime, sql
):
    user = users()
    doomed = await catalog.title("Doomed")
    kept = await catalog.title("Kept")
    e1 = await catalog.episode(doomed, 1, 1)
    e2 = await catalog.episode(doomed, 1, 2)
    k1 = await catalog.episode(kept, 1, 1)
    for t in (doomed, kept):
        await client.post("/api/favorites", json={"titleId": str(t)}, headers=user.headers)
    for e in (e1, e2, k1):
        r = await client.post(
            "/api/playback", json={"episodeId": str(e), "positionSec": 30}, headers=user.headers
        )
        assert r.status_code == 200

    await publish_thrice(
        catalog,
        runtime,
        TitleDeletedV1(title_id=doomed, slug="doomed", episode_ids=[e1, e2]),
    )

    r = await client.get("/api/users/me/watchlist", headers=user.headers)
    assert [i["titleId"] for i in r.json()["items"]] == [str(kept)]
    positions = await sql("SELECT episode_id FROM playback.positions WHERE user_id = :u", u=user.id)
    assert positions == [{"episode_id": k1}]
    assert await sql("SELECT id FROM playback.titles WHERE id = :t", t=doomed) == []
    assert await sql("SELECT id FROM playback.episodes WHERE title_id = :t", t=doomed) == []
    r = await client.post("/api/favorites", json={"titleId": str(doomed)}, headers=user.headers)
    assert r.status_code == 404
    r = await client.post(
        "/api/playback", json={"episodeId": str(e1), "positionSec": 1}, headers=user.headers
    )
    assert r.status_code == 404

    # A created/uploaded delivered late (its own consumer lagged) stays deleted.
    late = await catalog.publish(TitleCreatedV1(title_id=doomed, slug="doomed", name="Doomed"))
    late_ep = await catalog.publish(catalog.uploaded(e1, doomed, "doomed"))
    await wait_until(lambda: inbox_count(runtime, late.id))
    await wait_until(lambda: inbox_count(runtime, late_ep.id))
    assert await sql("SELECT id FROM playback.titles WHERE id = :t", t=doomed) == []
    assert await sql("SELECT id FROM playback.episodes WHERE id = :e", e=e1) == []


async def test_episode_deletion_erases_positions(client, catalog, users, runtime, sql):
    user, other = users(), users()
    show = await catalog.title()
    e1 = await catalog.episode(show, 1, 1)
    e2 = await catalog.episode(show, 1, 2)
    for u in (user, other):
        for e in (e1, e2):
            await client.post(
                "/api/playback", json={"episodeId": str(e), "positionSec": 5}, headers=u.headers
            )

    await publish_thrice(catalog, runtime, EpisodeDeletedV1(episode_id=e1, title_id=show))

    rows = await sql("SELECT DISTINCT episode_id FROM playback.positions")
    assert rows == [{"episode_id": e2}]
    r = await client.get(f"/api/playback/{e1}", headers=user.headers)
    assert r.status_code == 404
    # A late duration for the deleted episode does not bring it back.
    late = await catalog.publish(catalog.completed(e1, 99.0))
    await wait_until(lambda: inbox_count(runtime, late.id))
    assert await sql("SELECT id FROM playback.episodes WHERE id = :e", e=e1) == []


async def test_user_deletion_erases_their_data_only(client, catalog, users, runtime, sql):
    gone, stays = users(), users()
    show = await catalog.title()
    ep = await catalog.episode(show)
    for u in (gone, stays):
        await client.post("/api/favorites", json={"titleId": str(show)}, headers=u.headers)
        await client.post(
            "/api/playback", json={"episodeId": str(ep), "positionSec": 5}, headers=u.headers
        )

    await publish_thrice(catalog, runtime, UserDeletedV1(user_id=uuid.uuid4(), clerk_id=gone.id))

    assert await counts(sql, user=gone.id) == {"favorites": 0, "positions": 0}
    assert await counts(sql, user=stays.id) == {"favorites": 1, "positions": 1}
    # A token that outlives the account cannot write new data.
    r = await client.post(
        "/api/playback", json={"episodeId": str(ep), "positionSec": 9}, headers=gone.headers
    )
    assert r.status_code == 403
    r = await client.post("/api/favorites", json={"titleId": str(show)}, headers=gone.headers)
    assert r.status_code == 403
    assert await counts(sql, user=gone.id) == {"favorites": 0, "positions": 0}


async def test_title_updates_apply_in_event_order(client, catalog, users, runtime):
    user = users()
    show = await catalog.title("Old name")
    await client.post("/api/favorites", json={"titleId": str(show)}, headers=user.headers)
    now = datetime.now(UTC)

    async def names():
        r = await client.get("/api/users/me/watchlist", headers=user.headers)
        return [i["name"] for i in r.json()["items"]]

    newer = Envelope.wrap(TitleUpdatedV1(title_id=show, slug="s", name="New name"))
    await catalog.publish(newer.payload(), envelope=newer.model_copy(update={"occurred_at": now}))
    await wait_until(lambda: inbox_count(runtime, newer.id))
    older = Envelope.wrap(TitleUpdatedV1(title_id=show, slug="s", name="Stale name"))
    await catalog.publish(
        older.payload(),
        envelope=older.model_copy(update={"occurred_at": now - timedelta(seconds=5)}),
    )
    await wait_until(lambda: inbox_count(runtime, older.id))
    assert await names() == ["New name"]


async def test_a_duration_may_arrive_before_the_episode(client, catalog, users, runtime, sql):
    user = users()
    show = await catalog.title()
    ep = uuid.uuid4()
    await catalog.publish(catalog.completed(ep, 600.0))
    await asyncio.sleep(0.5)
    # Not projected while catalog's event is still on its way: no row of its own.
    assert await sql("SELECT id FROM playback.episodes WHERE id = :e", e=ep) == []

    up = await catalog.publish(catalog.uploaded(ep, show, "s"))
    await wait_until(lambda: inbox_count(runtime, up.id))

    # The duration, retried, applies once the episode is known.
    async def has_duration() -> bool:
        rows = await sql("SELECT duration_sec FROM playback.episodes WHERE id = :e", e=ep)
        return bool(rows) and rows[0]["duration_sec"] == 600.0

    await wait_until(has_duration, within=15)
    r = await client.post(
        "/api/playback", json={"episodeId": str(ep), "positionSec": 700}, headers=user.headers
    )
    assert r.json()["positionSec"] == 600.0
    assert r.json()["watched"] is True


async def test_a_duration_for_an_episode_never_announced_is_dead_lettered(
    catalog, runtime, sql, nats_url, event_namespace
):
    ghost = uuid.uuid4()
    event = await catalog.publish(catalog.completed(ghost, 600.0))
    subject = dead_letter_subject(
        event_namespace.subject_root,
        "playback-transcoder-transcode-completed",
        "transcoder.transcode.completed",
    )

    async def parked() -> list:
        msgs = await stream_messages(nats_url, event_namespace.stream, subject)
        return [m for m in msgs if envelope_of(m)["id"] == str(event.id)]

    await wait_until(parked, within=30)
    assert await sql("SELECT id FROM playback.episodes WHERE id = :e", e=ghost) == []
    assert await inbox_count(runtime, event.id) == 0


async def test_an_older_duration_or_ending_never_replaces_a_newer_one(catalog, runtime, sql):
    show = await catalog.title()
    ep = await catalog.episode(show, duration=None)
    now = datetime.now(UTC)

    async def deliver(payload, at) -> None:
        env = Envelope.wrap(payload)
        await catalog.publish(payload, envelope=env.model_copy(update={"occurred_at": at}))
        await wait_until(lambda: inbox_count(runtime, env.id))

    def ending(start: float) -> EpisodeMarkersChangedV1:
        return EpisodeMarkersChangedV1(
            episode_id=ep,
            markers=[EpisodeMarker(kind="ending", start_sec=start, end_sec=start + 60)],
        )

    await deliver(catalog.completed(ep, 600.0), now)
    await deliver(ending(500.0), now)
    # Each column keeps its own event time: older events of either kind lose.
    await deliver(catalog.completed(ep, 300.0), now - timedelta(seconds=5))
    await deliver(ending(200.0), now - timedelta(seconds=5))
    rows = await sql(
        "SELECT duration_sec, watched_from_sec FROM playback.episodes WHERE id = :e", e=ep
    )
    assert rows == [{"duration_sec": 600.0, "watched_from_sec": 500.0}]
