"""Openings and endings on episodes: projected from detection, set by editors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
from sqlalchemy import select

from studio_catalog.models import messaging
from studio_catalog.subscribers import on_completed, on_markers, on_playability
from studio_common.events import (
    Envelope,
    EpisodeMarker,
    EpisodeMarkersDetectedV1,
    EpisodePlayabilityChangedV1,
    EventPayload,
    TranscodeCompletedV1,
    subject_for,
)
from studio_common.testing.jetstream import wait_until

PROBLEM = "application/problem+json"
OPENING = {"kind": "opening", "startSec": 12.5, "endSec": 101.0}
ENDING = {"kind": "ending", "startSec": 1300.0, "endSec": 1389.5}


def detected(episode_id: str, *markers: dict[str, Any]) -> EpisodeMarkersDetectedV1:
    return EpisodeMarkersDetectedV1(
        episode_id=uuid.UUID(episode_id),
        season_id=uuid.uuid4(),
        markers=[EpisodeMarker.model_validate(m) for m in markers],
        duration_sec=1420.0,
    )


async def handle(app: Any, payload: EventPayload, handler: Any, at: datetime | None = None) -> None:
    envelope = Envelope.wrap(payload)
    if at is not None:
        envelope = envelope.model_copy(update={"occurred_at": at})
    async with app.state.runtime.database.transaction() as session:
        await handler(payload, envelope, session)


async def transcoded(app: Any, episode_id: str, duration: float = 1420.0) -> None:
    await handle(
        app,
        TranscodeCompletedV1(
            episode_id=uuid.UUID(episode_id),
            job_id=uuid.uuid4(),
            hls_master_key=f"hls/{episode_id}/v1/master.m3u8",
            duration_sec=duration,
        ),
        on_completed,
    )


async def an_episode(make: Any) -> dict[str, Any]:
    title = await make.title()
    season = await make.season(title["id"])
    episode: dict[str, Any] = await make.episode(season["id"])
    return episode


async def announced(app: Any, episode_id: str) -> list[dict[str, Any]]:
    """The ``catalog.episode.markers_changed`` events of an episode in the outbox, oldest first."""
    async with app.state.runtime.database.transaction() as session:
        rows = (
            await session.execute(
                select(messaging.outbox.c.envelope)
                .where(messaging.outbox.c.event_type == "catalog.episode.markers_changed")
                .order_by(messaging.outbox.c.created_at)
            )
        ).all()
    return [e["data"] for (e,) in rows if e["data"]["episodeId"] == episode_id]


def assert_problem(r: Any, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["type"] == f"urn:studio:problem:{slug}"


async def test_detected_markers_reach_the_episode_through_the_event_stream(
    make, client, catalog_app, nats_url, event_namespace
):
    ep = await an_episode(make)
    assert ep["markers"] == []
    payload = detected(ep["id"], OPENING, ENDING)
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(
            subject_for(event_namespace.subject_root, payload.event_type),
            Envelope.wrap(payload).model_dump_json(by_alias=True).encode(),
            stream=event_namespace.stream,
        )
    finally:
        await nc.close()

    async def markers() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = (await client.get(f"/api/episodes/{ep['id']}")).json()[
            "markers"
        ]
        return found or None

    assert await wait_until(markers) == [
        {**OPENING, "source": "detected"},
        {**ENDING, "source": "detected"},
    ]


async def test_an_older_detection_does_not_replace_a_newer_one(make, client, catalog_app):
    ep = await an_episode(make)
    now = datetime.now(UTC)
    await handle(catalog_app, detected(ep["id"], OPENING), on_markers, now)
    await handle(catalog_app, detected(ep["id"], ENDING), on_markers, now - timedelta(seconds=5))
    got = (await client.get(f"/api/episodes/{ep['id']}")).json()["markers"]
    assert [m["kind"] for m in got] == ["opening"]


async def test_an_editor_sets_markers_and_detection_never_overwrites_them(
    make, client, auth, catalog_app
):
    ep = await an_episode(make)
    await transcoded(catalog_app, ep["id"])
    await handle(catalog_app, detected(ep["id"], OPENING, ENDING), on_markers)
    mine = {"kind": "opening", "startSec": 10.0, "endSec": 99.0}
    r = await client.put(
        f"/api/admin/episodes/{ep['id']}/markers", json={"markers": [mine]}, headers=auth.editor
    )
    assert r.status_code == 200, r.text
    assert r.json()["markers"] == [{**mine, "source": "editor"}]

    await handle(catalog_app, detected(ep["id"], OPENING, ENDING), on_markers)
    public = (await client.get(f"/api/episodes/{ep['id']}")).json()
    assert public["markers"] == [{**mine, "source": "editor"}]

    # Playback hears of each change: the detection, then the editor's markers.
    assert [(e["markers"], e["edited"]) for e in await announced(catalog_app, ep["id"])] == [
        ([OPENING, ENDING], False),
        ([mine], True),
    ]

    # Cleared by an editor, they stay cleared.
    r = await client.put(
        f"/api/admin/episodes/{ep['id']}/markers", json={"markers": []}, headers=auth.editor
    )
    assert r.status_code == 200, r.text
    await handle(catalog_app, detected(ep["id"], OPENING), on_markers)
    assert (await client.get(f"/api/episodes/{ep['id']}")).json()["markers"] == []


async def test_markers_that_do_not_fit_the_episode_are_refused(make, client, auth, catalog_app):
    ep = await an_episode(make)
    url = f"/api/admin/episodes/{ep['id']}/markers"
    r = await client.put(url, json={"markers": [OPENING]}, headers=auth.editor)
    assert_problem(r, 409, "episode-duration-unknown")

    await transcoded(catalog_app, ep["id"], duration=1400.0)
    bad = {
        "start after end": [{"kind": "opening", "startSec": 90.0, "endSec": 20.0}],
        "empty": [{"kind": "opening", "startSec": 20.0, "endSec": 20.0}],
        "past the end": [{"kind": "ending", "startSec": 1300.0, "endSec": 1400.5}],
        "overlap": [
            {"kind": "opening", "startSec": 10.0, "endSec": 100.0},
            {"kind": "ending", "startSec": 99.0, "endSec": 180.0},
        ],
        "two openings": [
            {"kind": "opening", "startSec": 10.0, "endSec": 100.0},
            {"kind": "opening", "startSec": 200.0, "endSec": 280.0},
        ],
    }
    for case, markers in bad.items():
        r = await client.put(url, json={"markers": markers}, headers=auth.editor)
        assert r.status_code == 422, case
        assert_problem(r, 422, "markers-invalid")
    for body in (
        {"markers": [{"kind": "credits", "startSec": 1.0, "endSec": 2.0}]},
        {"markers": [{**OPENING, "startSec": -1.0}]},
        {"markers": [{**OPENING, "source": "detected"}]},
        {"markers": [OPENING, ENDING, OPENING]},
        {},
    ):
        assert_problem(await client.put(url, json=body, headers=auth.editor), 422, "validation")
    assert (await client.get(f"/api/episodes/{ep['id']}")).json()["markers"] == []

    r = await client.put(
        f"/api/admin/episodes/{uuid.uuid4()}/markers", json={"markers": []}, headers=auth.editor
    )
    assert_problem(r, 404, "not-found")


async def test_only_editors_set_markers(make, client, auth, catalog_app):
    ep = await an_episode(make)
    url = f"/api/admin/episodes/{ep['id']}/markers"
    assert_problem(await client.put(url, json={"markers": []}), 401, "unauthorized")
    r = await client.put(url, json={"markers": []}, headers=auth.headers("viewer"))
    assert_problem(r, 403, "forbidden")


async def test_an_episode_names_the_next_playable_one_for_next_episode(make, client, catalog_app):
    title = await make.title()
    first_season = await make.season(title["id"], 1)
    second_season = await make.season(title["id"], 2)
    # Created out of order: the order is the seasons' and episodes' numbers.
    s2e1 = await make.episode(second_season["id"], 1)
    s1e2 = await make.episode(first_season["id"], 2)
    s1e1 = await make.episode(first_season["id"], 1)

    async def following(episode: dict[str, Any]) -> Any:
        r = await client.get(f"/api/episodes/{episode['id']}")
        assert r.status_code == 200, r.text
        return r.json()["nextEpisodeId"]

    # Not playable yet: nothing to go on to.
    assert await following(s1e1) is None
    for ep in (s1e1, s1e2, s2e1):
        await handle(
            catalog_app,
            EpisodePlayabilityChangedV1(
                episode_id=uuid.UUID(ep["id"]), playable=True, state="playable"
            ),
            on_playability,
        )
    assert await following(s1e1) == s1e2["id"]
    assert await following(s1e2) == s2e1["id"]  # the next season's first
    assert await following(s2e1) is None  # the title's last episode
    # The title page's episodes do not carry it: only the episode read does.
    detail = (await client.get(f"/api/titles/{title['slug']}")).json()
    assert "nextEpisodeId" not in detail["seasons"][0]["episodes"][0]
