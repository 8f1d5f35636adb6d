"""Resume positions: upsert, clamp, ordering, watched, and continue-watching."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest


async def save(client, user, episode_id, position, **extra):
    return await client.post(
        "/api/playback",
        json={"episodeId": str(episode_id), "positionSec": position, **extra},
        headers=user.headers,
    )


async def test_a_position_is_upserted_once_per_user_and_episode(client, catalog, users, sql):
    user, other = users(), users()
    title = await catalog.title()
    ep = await catalog.episode(title, duration=1000.0)

    r = await client.get(f"/api/playback/{ep}", headers=user.headers)
    assert r.status_code == 200
    assert r.json()["positionSec"] == 0
    assert r.json()["updatedAt"] is None
    assert "applied" not in r.json()

    r = await save(client, user, ep, 12.5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["applied"] is True
    assert body["positionSec"] == 12.5
    assert body["durationSec"] == 1000.0
    assert body["titleId"] == str(title)
    assert body["watched"] is False

    assert (await save(client, user, ep, 300)).json()["positionSec"] == 300
    assert (await save(client, other, ep, 40)).json()["positionSec"] == 40

    r = await client.get(f"/api/playback/{ep}", headers=user.headers)
    assert r.json()["positionSec"] == 300
    rows = await sql("SELECT user_id FROM playback.positions WHERE episode_id = :e", e=ep)
    assert sorted(r["user_id"] for r in rows) == sorted([user.id, other.id])


async def test_positions_are_clamped_and_mark_the_episode_watched(client, catalog, users):
    user = users()
    title = await catalog.title()
    ep = await catalog.episode(title, duration=1000.0)

    r = await save(client, user, ep, 899)
    assert r.json()["watched"] is False
    r = await save(client, user, ep, 900)
    assert r.json()["watched"] is True
    r = await save(client, user, ep, 5000)
    assert r.json()["positionSec"] == 1000.0
    # Watching it again from the start keeps it watched.
    r = await save(client, user, ep, 10)
    assert r.json() | {"positionSec": 10, "watched": True} == r.json()


async def test_without_a_known_duration_the_position_is_kept_as_sent(client, catalog, users):
    user = users()
    title = await catalog.title()
    ep = await catalog.episode(title, duration=None)
    r = await save(client, user, ep, 5000)
    assert r.json()["positionSec"] == 5000
    assert r.json()["watched"] is False
    assert r.json()["durationSec"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"positionSec": -1},
        {"positionSec": 86_401},
        {"positionSec": "soon"},
        {"positionSec": 10, "sequence": -1},
        {"positionSec": 10, "clientTime": "1999-12-31T23:59:59Z"},
        {"positionSec": 10, "clientTime": "2025-01-01T10:00:00"},  # no time zone
        {"positionSec": 10, "extra": 1},
        {},
    ],
)
async def test_absurd_writes_are_422(client, catalog, users, body):
    user = users()
    r = await client.post(
        "/api/playback", json={"episodeId": str(uuid.uuid4()), **body}, headers=user.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:studio:problem:validation"


async def test_unknown_episodes_are_404(client, catalog, users, runtime):
    user = users()
    r = await save(client, user, uuid.uuid4(), 10)
    assert r.status_code == 404
    assert (
        await client.get(f"/api/playback/{uuid.uuid4()}", headers=user.headers)
    ).status_code == 404


async def test_an_older_write_never_overwrites_a_newer_one(client, catalog, users):
    user = users()
    title = await catalog.title()
    ep = await catalog.episode(title)

    assert (await save(client, user, ep, 50, sequence=5)).json()["applied"] is True
    r = await save(client, user, ep, 20, sequence=3)
    assert r.status_code == 200
    assert r.json() | {"applied": False, "positionSec": 50, "sequence": 5} == r.json()
    # The same sequence again (a retry) changes nothing either.
    assert (await save(client, user, ep, 70, sequence=5)).json()["applied"] is False
    assert (await save(client, user, ep, 60, sequence=6)).json()["positionSec"] == 60
    r = await client.get(f"/api/playback/{ep}", headers=user.headers)
    assert r.json()["positionSec"] == 60
    assert r.json()["sequence"] == 6


async def test_client_time_orders_writes(client, catalog, users):
    user = users()
    title = await catalog.title()
    ep = await catalog.episode(title)
    t = datetime.now(UTC) - timedelta(minutes=5)

    await save(client, user, ep, 100, clientTime=t.isoformat())
    r = await save(client, user, ep, 90, clientTime=(t - timedelta(seconds=10)).isoformat())
    assert r.json()["applied"] is False
    assert r.json()["positionSec"] == 100
    r = await save(client, user, ep, 110, clientTime=(t + timedelta(seconds=10)).isoformat())
    assert r.json()["positionSec"] == 110
    # No ordering given: arrival time, which is later than a clock five minutes behind.
    assert (await save(client, user, ep, 120)).json()["positionSec"] == 120
    # A clock far ahead counts as "now" and cannot pin the position.
    await save(client, user, ep, 130, clientTime=(t + timedelta(days=365)).isoformat())
    assert (await save(client, user, ep, 140)).json()["positionSec"] == 140


async def test_concurrent_out_of_order_writes_keep_the_newest(client, catalog, users, sql):
    user = users()
    title = await catalog.title()
    ep = await catalog.episode(title, duration=10_000.0)
    sequences = list(range(1, 61))
    random.shuffle(sequences)
    responses = await asyncio.gather(
        *(save(client, user, ep, float(s * 10), sequence=s) for s in sequences)
    )
    assert all(r.status_code == 200 for r in responses)
    rows = await sql(
        "SELECT position_sec, seq FROM playback.positions WHERE user_id = :u", u=user.id
    )
    assert rows == [{"position_sec": 600.0, "seq": 60}]


async def continue_watching(client, user):
    r = await client.get("/api/me/continue-watching", headers=user.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_continue_watching_resumes_or_moves_to_the_next_episode(client, catalog, users):
    user = users()
    show = await catalog.title("Show")
    s1e1 = await catalog.episode(show, 1, 1, 1000.0)
    s1e2 = await catalog.episode(show, 1, 2, 1000.0)
    s2e1 = await catalog.episode(show, 2, 1, 1000.0)
    # Created out of order on purpose: the next one is by season, then episode.
    s1e10 = await catalog.episode(show, 1, 10, 1000.0)
    movie = await catalog.title("Movie")
    m1 = await catalog.episode(movie, 1, 1, 6000.0)

    assert await continue_watching(client, user) == []

    await save(client, user, s1e1, 500)
    items = await continue_watching(client, user)
    assert len(items) == 1
    assert (
        items[0]
        | {
            "titleId": str(show),
            "name": "Show",
            "episodeId": str(s1e1),
            "positionSec": 500,
            "upNext": False,
            "seasonNumber": 1,
            "episodeNumber": 1,
        }
        == items[0]
    )

    await save(client, user, s1e1, 950)  # finished
    items = await continue_watching(client, user)
    assert items[0] | {"episodeId": str(s1e2), "positionSec": 0, "upNext": True} == items[0]

    await save(client, user, m1, 60)  # newer activity comes first
    items = await continue_watching(client, user)
    assert [i["titleId"] for i in items] == [str(movie), str(show)]

    await save(client, user, s1e2, 999)
    items = await continue_watching(client, user)
    assert [i["episodeId"] for i in items] == [str(s1e10), str(m1)]

    await save(client, user, s1e10, 999)
    items = await continue_watching(client, user)
    assert items[0]["episodeId"] == str(s2e1)
    assert (items[0]["seasonNumber"], items[0]["episodeNumber"]) == (2, 1)

    # Finishing the last episode completes the title: nothing to continue.
    await save(client, user, s2e1, 1000)
    items = await continue_watching(client, user)
    assert [i["titleId"] for i in items] == [str(movie)]

    # Going back to an earlier episode resumes it.
    await save(client, user, s1e2, 120)
    items = await continue_watching(client, user)
    assert items[0] | {"episodeId": str(s1e2), "positionSec": 120, "upNext": False} == items[0]


async def test_the_next_episode_resumes_where_it_was_left(client, catalog, users):
    user = users()
    show = await catalog.title()
    e1 = await catalog.episode(show, 1, 1, 1000.0)
    e2 = await catalog.episode(show, 1, 2, 1000.0)
    await save(client, user, e2, 200)
    await save(client, user, e1, 1000)
    items = await continue_watching(client, user)
    assert items[0] | {"episodeId": str(e2), "positionSec": 200, "upNext": True} == items[0]


async def test_continue_watching_is_per_user_and_bounded(client, catalog, users):
    user, other = users(), users()
    show = await catalog.title()
    ep = await catalog.episode(show)
    await save(client, user, ep, 10)
    assert await continue_watching(client, other) == []
    r = await client.get("/api/me/continue-watching", params={"limit": 51}, headers=user.headers)
    assert r.status_code == 422
