"""An episode is watched from the start of its ending (catalog.episode.markers_changed)."""

from __future__ import annotations

from studio_common.events import EpisodeMarker, EpisodeMarkersChangedV1
from studio_common.testing.jetstream import wait_until


async def save(client, user, episode_id, position):
    r = await client.post(
        "/api/playback",
        json={"episodeId": str(episode_id), "positionSec": position},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def ending_at(catalog, sql, episode_id, start: float | None) -> None:
    markers = [] if start is None else [{"kind": "ending", "startSec": start, "endSec": 1430.0}]
    opening = EpisodeMarker(kind="opening", start_sec=10.0, end_sec=100.0)
    await catalog.publish(
        EpisodeMarkersChangedV1(
            episode_id=episode_id,
            markers=[opening, *(EpisodeMarker.model_validate(m) for m in markers)],
        )
    )

    async def applied() -> bool:
        rows = await sql(
            "SELECT watched_from_sec FROM playback.episodes WHERE id = :i", i=episode_id
        )
        return bool(rows) and rows[0]["watched_from_sec"] == start

    await wait_until(applied)


async def test_the_ending_marks_an_episode_watched_and_continue_watching_moves_on(
    client, catalog, users, sql
):
    user = users()
    show = await catalog.title("Show")
    first = await catalog.episode(show, 1, 1, 1440.0)
    second = await catalog.episode(show, 1, 2, 1440.0)
    await ending_at(catalog, sql, first, 1200.0)

    assert (await save(client, user, first, 1190))["watched"] is False
    # 1210 s is short of 90 % (1296 s) but inside the ending: the credits are rolling.
    assert (await save(client, user, first, 1210))["watched"] is True
    r = await client.get("/api/me/continue-watching", headers=user.headers)
    item = r.json()["items"][0]
    assert item | {"episodeId": str(second), "upNext": True, "positionSec": 0} == item


async def test_without_an_ending_the_watched_fraction_applies(client, catalog, users, sql):
    user = users()
    show = await catalog.title("Show")
    ep = await catalog.episode(show, 1, 1, 1440.0)
    await ending_at(catalog, sql, ep, 1200.0)
    await ending_at(catalog, sql, ep, None)  # an editor cleared the ending
    assert (await save(client, user, ep, 1210))["watched"] is False
    assert (await save(client, user, ep, 1300))["watched"] is True
