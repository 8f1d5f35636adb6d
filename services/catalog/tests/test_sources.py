"""An episode's source must be a video media verified, uploaded by the caller.

Catalog knows verified uploads from media's ``media.upload.verified`` events
(its own projection) and refuses anything else when the episode is created."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
from sqlalchemy import text

from studio_common.events import Envelope, UploadVerifiedV1, subject_for

PROBLEM = "urn:studio:problem:"


async def create(client, auth, sub, season_id, key, role="editor", **extra: Any):
    return await client.post(
        "/api/admin/episodes",
        json={"seasonId": season_id, "number": 1, "name": "x", "sourceKey": key, **extra},
        headers=auth.headers(role, sub),
    )


async def uploaded_event(app, episode_id: str) -> dict[str, Any]:
    async with app.state.runtime.database.transaction() as s:
        row = await s.scalar(
            text(
                "SELECT envelope FROM catalog.outbox WHERE event_type = 'catalog.episode.uploaded' "
                "AND envelope->'data'->>'episodeId' = :id"
            ),
            {"id": episode_id},
        )
    assert row is not None
    data: dict[str, Any] = row["data"]
    return data


async def episodes_of(client, title_slug: str) -> list[Any]:
    r = await client.get(f"/api/titles/{title_slug}")
    return [e for s in r.json()["seasons"] for e in s["episodes"]]


async def test_a_source_media_never_verified_is_refused_at_creation(client, make, auth):
    title = await make.title()
    season = await make.season(title["id"])
    r = await create(client, auth, "editor_a", season["id"], f"uploads/{uuid.uuid4()}/x.mp4")
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "source-not-verified"
    assert r.headers["content-type"] == "application/problem+json"
    assert await episodes_of(client, title["slug"]) == []


async def test_another_editors_source_is_refused_but_an_admin_may_use_it(
    client, make, auth, verified_upload
):
    title = await make.title()
    season = await make.season(title["id"])
    source = await verified_upload("editor_a")
    r = await create(client, auth, "editor_b", season["id"], source.key)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "source-not-owned"
    assert await episodes_of(client, title["slug"]) == []
    r = await create(client, auth, "admin_c", season["id"], source.key, role="admin")
    assert r.status_code == 201, r.text


async def test_a_subtitle_upload_is_not_a_source(client, make, auth, verified_upload):
    title = await make.title()
    season = await make.season(title["id"])
    source = await verified_upload("editor_a")
    subtitle = await verified_upload(
        "editor_a", kind="subtitle", filename="x.en.vtt", attached_to=source.upload_id
    )
    r = await create(client, auth, "editor_a", season["id"], subtitle.key)
    assert r.json()["type"] == PROBLEM + "source-key-invalid"


async def test_subtitles_come_from_uploads_attached_by_id(
    client, make, auth, verified_upload, catalog_app
):
    title = await make.title()
    season = await make.season(title["id"])
    source = await verified_upload("editor_a", filename="ep.mkv")
    mine = await verified_upload(
        "editor_a", kind="subtitle", filename="ep.en.vtt", attached_to=source.upload_id
    )
    # Another editor's subtitle for their own source, with a name "next to" ours: not taken.
    theirs = await verified_upload("editor_b", filename="ep.mkv")
    stray = await verified_upload(
        "editor_b", kind="subtitle", filename="ep.fr.vtt", attached_to=theirs.upload_id
    )
    r = await create(
        client,
        auth,
        "editor_a",
        season["id"],
        source.key,
        subtitleUploadIds=[str(stray.upload_id)],
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "subtitle-not-attached"
    assert r.json()["subtitleUploadIds"] == [str(stray.upload_id)]

    r = await create(
        client, auth, "editor_a", season["id"], source.key, subtitleUploadIds=[str(mine.upload_id)]
    )
    assert r.status_code == 201, r.text
    data = await uploaded_event(catalog_app, r.json()["id"])
    assert data["sourceKey"] == source.key
    assert data["sourceUploadId"] == str(source.upload_id)
    assert data["subtitleKeys"] == [mine.key]


async def test_creation_waits_for_a_verification_still_on_its_way(
    client, make, auth, nats_url, event_namespace
):
    """The client creates the episode as soon as media answered; the event arrives later."""
    title = await make.title()
    season = await make.season(title["id"])
    upload_id = uuid.uuid4()
    event = UploadVerifiedV1(
        upload_id=upload_id,
        key=f"uploads/{upload_id}/ep.mp4",
        kind="source",
        owner="editor_a",
        size=1000,
        content_type="video/mp4",
        format="mp4",
        filename="ep.mp4",
    )
    request = asyncio.create_task(create(client, auth, "editor_a", season["id"], event.key))
    await asyncio.sleep(0.3)
    assert not request.done()
    env = Envelope.wrap(event)
    nc = await nats.connect(nats_url)
    try:
        for _ in range(2):  # redelivered: the projection takes it once
            await nc.jetstream().publish(
                subject_for(event_namespace.subject_root, env.type),
                env.model_dump_json(by_alias=True).encode(),
                stream=event_namespace.stream,
            )
    finally:
        await nc.close()
    r = await request
    assert r.status_code == 201, r.text
    assert r.json()["sourceKey"] == event.key
