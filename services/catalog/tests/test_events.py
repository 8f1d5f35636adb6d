"""Outbox → JetStream and JetStream → catalog, against the real servers."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest
from sqlalchemy import func, select

from studio_catalog.models import messaging
from studio_catalog.schemas import EpisodeIn, SeasonIn, TitleIn
from studio_catalog.service import CatalogService
from studio_common.auth import Principal, Role
from studio_common.db import Database
from studio_common.events import (
    Envelope,
    EpisodePlayabilityChangedV1,
    EventPayload,
    TranscodeCompletedV1,
    TranscodeFailedV1,
    TranscodePlayableV1,
    TranscodeProgressV1,
    TranscodeStartedV1,
    dead_letter_subject,
    subject_for,
)
from studio_common.outbox import OutboxRelay
from studio_common.testing.jetstream import (
    envelope_of,
    publish_envelope,
    published_once,
    stream_messages,
    wait_until,
)


async def uploaded_events(nats_url, ns, episode_id: str) -> list:
    msgs = await stream_messages(
        nats_url, ns.stream, subject_for(ns.subject_root, "catalog.episode.uploaded")
    )
    return [m for m in msgs if envelope_of(m)["data"]["episodeId"] == episode_id]


async def visibility_events(nats_url, ns, episode_id: str) -> list[dict]:
    msgs = await stream_messages(
        nats_url, ns.stream, subject_for(ns.subject_root, "catalog.episode.visibility_changed")
    )
    found = [envelope_of(m)["data"] for m in msgs]
    return [d for d in found if d["episodeId"] == episode_id]


async def test_visibility_is_announced_at_creation_and_on_each_change(
    make, client, auth, nats_url, event_namespace
):
    title = await make.title(slug=f"visible-{uuid.uuid4().hex[:6]}")
    season = await make.season(title["id"], 1)
    ep = await make.episode(season["id"], 1, public=True)
    assert ep["public"] is True
    url = f"/api/admin/episodes/{ep['id']}"
    # A change, no change, an untouched field, and back.
    for body in ({"public": False}, {"public": False}, {"name": "Renamed"}, {"public": True}):
        r = await client.patch(url, json=body, headers=auth.editor)
        assert r.status_code == 200, r.text
    assert r.json()["public"] is True
    r = await client.patch(url, json={"public": None}, headers=auth.editor)
    assert r.status_code == 422

    async def three() -> bool:
        return len(await visibility_events(nats_url, event_namespace, ep["id"])) >= 3

    await wait_until(three)
    await asyncio.sleep(0.5)  # time for a wrong extra event to show up
    events = await visibility_events(nats_url, event_namespace, ep["id"])
    assert [e["public"] for e in events] == [True, False, True]
    assert {e["titleId"] for e in events} == {title["id"]}


async def test_creating_an_episode_publishes_exactly_one_uploaded_event(
    make, nats_url, event_namespace
):
    title = await make.title(slug=f"uploaded-{uuid.uuid4().hex[:6]}")
    season = await make.season(title["id"], 2)
    key = await make.source("ep5.mp4")
    ep = await make.episode(season["id"], 5, sourceKey=key)

    env = await published_once(lambda: uploaded_events(nats_url, event_namespace, ep["id"]))
    assert env["type"] == "catalog.episode.uploaded"
    assert env["version"] == 1
    assert env["data"] == {
        "episodeId": ep["id"],
        "titleId": title["id"],
        "titleSlug": title["slug"],
        "seasonId": season["id"],
        "seasonNumber": 2,
        "episodeNumber": 5,
        "sourceKey": key,
        "sourceUploadId": key.split("/")[1],
        "subtitleKeys": [],
    }


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


class CrashAfterPublish(OutboxRelay):
    """Dies right after JetStream acknowledged the episode event, before the commit."""

    async def _publish(self, event_id, event_type, envelope, headers) -> None:
        await super()._publish(event_id, event_type, envelope, headers)
        if event_type == "catalog.episode.uploaded":
            raise SimulatedCrash


async def test_relay_restarted_between_publish_and_commit_publishes_once(
    catalog_app, make, nats_url, event_namespace
):
    runtime = catalog_app.state.runtime
    await runtime.relay.stop()
    try:
        ep = await make.any_episode()
        await asyncio.sleep(0.5)
        assert await uploaded_events(nats_url, event_namespace, ep["id"]) == []

        crashing = CrashAfterPublish(
            runtime.database,
            messaging,
            runtime.js,
            subject_root=event_namespace.subject_root,
            stream=event_namespace.stream,
        )
        with pytest.raises(SimulatedCrash):
            await crashing.publish_pending()
        # The message reached the stream, but the row still says "unpublished".
        assert len(await uploaded_events(nats_url, event_namespace, ep["id"])) == 1
        async with runtime.database.transaction() as s:
            pending = await s.scalar(
                select(func.count())
                .select_from(messaging.outbox)
                .where(messaging.outbox.c.published_at.is_(None))
            )
        assert pending >= 1
    finally:
        runtime.relay.start()

    async def drained() -> bool:
        async with runtime.database.transaction() as s:
            n = await s.scalar(
                select(func.count())
                .select_from(messaging.outbox)
                .where(messaging.outbox.c.published_at.is_(None))
            )
        return n == 0

    await wait_until(drained)
    # Republished with the same Nats-Msg-Id: the stream's duplicate window dropped it.
    assert len(await uploaded_events(nats_url, event_namespace, ep["id"])) == 1


async def test_a_rolled_back_transaction_publishes_nothing(
    catalog_settings, nats_url, event_namespace, verified_upload
):
    source = await verified_upload("editor_rb")
    db = Database.connect(catalog_settings.database_url, pool_size=1)
    created: list[str] = []
    try:
        with pytest.raises(RuntimeError, match="abort"):
            async with db.transaction() as session:
                service = CatalogService(session)
                title = await service.create_title(
                    TitleIn(slug=f"rb-{uuid.uuid4().hex[:6]}", name="Rolled back", type="series")
                )
                season = await service.create_season(SeasonIn(title_id=title.id, number=1))
                ep = await service.create_episode(
                    EpisodeIn(season_id=season.id, number=1, name="x", source_key=source.key),
                    Principal(subject="editor_rb", role=Role.editor),
                )
                created.append(str(ep.id))
                raise RuntimeError("abort")
        async with db.transaction() as s:
            rows = (await s.execute(select(messaging.outbox.c.envelope))).scalars().all()
        assert not [r for r in rows if r["data"].get("episodeId") == created[0]]
    finally:
        await db.dispose()
    await asyncio.sleep(1.0)
    assert await uploaded_events(nats_url, event_namespace, created[0]) == []


# --- transcode events → episode state ---------------------------------------


async def publish(
    nats_url, ns, payload: EventPayload, *, occurred_at=None, envelope: Envelope | None = None
):
    env = envelope or Envelope.wrap(payload)
    if occurred_at is not None:
        env = env.model_copy(update={"occurred_at": occurred_at})
    # A fresh message id: a redelivery as the broker would make it.
    return await publish_envelope(nats_url, ns.subject_root, ns.stream, env)


async def inbox_count(runtime, event_id) -> int:
    async with runtime.database.transaction() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(messaging.inbox)
                .where(messaging.inbox.c.event_id == event_id)
            )
        )


async def test_transcode_events_drive_the_episode_state(
    client, catalog_app, make, auth, nats_url, event_namespace
):
    runtime = catalog_app.state.runtime
    title = await make.title()
    season = await make.season(title["id"])
    ep = await make.episode(season["id"])
    eid = uuid.UUID(ep["id"])
    job = uuid.uuid4()
    t0 = datetime.now(UTC)

    async def state():
        r = await client.get(f"/api/admin/episodes/{ep['id']}", headers=auth.editor)
        return r.json()

    async def state_is(expected: str, **fields):
        async def check():
            s = await state()
            return (
                s["transcodeState"] == expected and all(s[k] == v for k, v in fields.items()) and s
            )

        return await wait_until(check)

    await publish(
        nats_url, event_namespace, TranscodeStartedV1(episode_id=eid, job_id=job), occurred_at=t0
    )
    await state_is("processing", transcodeProgress=0.0, transcodeJobId=str(job))

    progress = await publish(
        nats_url,
        event_namespace,
        TranscodeProgressV1(episode_id=eid, job_id=job, percent=42.5, playable=True),
        occurred_at=t0 + timedelta(seconds=1),
    )
    s = await state_is("processing", transcodeProgress=42.5)
    # The transcoder's word is not enough: only media, which serves it, says playable.
    assert s["playable"] is False
    public = (await client.get(f"/api/episodes/{ep['id']}")).json()
    assert public["transcodeProgress"] == 42.5

    await publish(
        nats_url,
        event_namespace,
        TranscodePlayableV1(
            episode_id=eid,
            job_id=job,
            hls_master_key="hls/x/season-1/ep-1/master.m3u8",
            renditions=["1080p"],
        ),
        occurred_at=t0 + timedelta(seconds=2),
    )
    s = await state_is("processing", renditions=["1080p"])
    assert s["hlsMasterKey"] == "hls/x/season-1/ep-1/master.m3u8"
    assert s["playable"] is False

    await publish(
        nats_url,
        event_namespace,
        TranscodeCompletedV1(
            episode_id=eid,
            job_id=job,
            hls_master_key="hls/x/season-1/ep-1/master.m3u8",
            duration_sec=1425.5,
            renditions=["1080p", "720p"],
            thumbnails=["thumbs/0001.jpg"],
            subtitles=[{"language": "en", "name": "English", "url": "subs/en.vtt"}],
        ),
        occurred_at=t0 + timedelta(seconds=10),
    )
    s = await state_is("ready")
    # Ready by the transcoder, yet media has not said it serves it (events reordered).
    assert s["playable"] is False
    await publish(
        nats_url,
        event_namespace,
        EpisodePlayabilityChangedV1(episode_id=eid, playable=True, state="ready"),
        occurred_at=t0 + timedelta(seconds=11),
    )
    s = await state_is("ready", playable=True)
    # media's older word arrives late: it must not win.
    stale = await publish(
        nats_url,
        event_namespace,
        EpisodePlayabilityChangedV1(episode_id=eid, playable=False, state="pending"),
        occurred_at=t0 + timedelta(seconds=3),
    )
    await wait_until(lambda: inbox_count(runtime, stale.id))
    assert (await state())["playable"] is True
    assert s["hlsMasterKey"] == "hls/x/season-1/ep-1/master.m3u8"
    assert s["durationSec"] == 1425.5
    assert s["renditions"] == ["1080p", "720p"]
    assert s["thumbnails"] == ["thumbs/0001.jpg"]
    assert s["subtitles"][0]["language"] == "en"
    assert s["transcodeProgress"] == 100.0

    # A late, older progress event arrives: processed, but it must not win.
    late = await publish(
        nats_url,
        event_namespace,
        TranscodeProgressV1(episode_id=eid, job_id=job, percent=80),
        occurred_at=t0 + timedelta(seconds=5),
    )
    await wait_until(lambda: inbox_count(runtime, late.id))
    assert (await state())["transcodeState"] == "ready"

    # The same progress event delivered again: applied once, state untouched.
    await publish(
        nats_url,
        event_namespace,
        TranscodeProgressV1(episode_id=eid, job_id=job, percent=42.5),
        envelope=progress,
    )
    await asyncio.sleep(1.0)
    assert await inbox_count(runtime, progress.id) == 1
    assert (await state())["transcodeState"] == "ready"


async def test_a_ready_episode_whose_media_is_gone_is_no_longer_ready(
    client, make, auth, nats_url, event_namespace
):
    """Media found the master of a ready episode gone from storage: catalog stops
    saying ready (and playable), and says so again if media finds it back."""
    ep = await make.any_episode()
    eid = uuid.UUID(ep["id"])
    t0 = datetime.now(UTC)
    key = f"hls/{eid}/{uuid.uuid4().hex}/master.m3u8"

    async def state():
        r = await client.get(f"/api/admin/episodes/{ep['id']}", headers=auth.editor)
        return r.json()

    async def becomes(expected: str, playable: bool):
        async def check():
            s = await state()
            return s["transcodeState"] == expected and s["playable"] is playable and s

        return await wait_until(check)

    async def media_says(playable: bool, state: str, seconds: int) -> None:
        """Media's word on the episode's playability, ``seconds`` after t0."""
        changed = EpisodePlayabilityChangedV1(episode_id=eid, playable=playable, state=state)
        await publish(
            nats_url, event_namespace, changed, occurred_at=t0 + timedelta(seconds=seconds)
        )

    await publish(
        nats_url,
        event_namespace,
        TranscodeCompletedV1(episode_id=eid, job_id=uuid.uuid4(), hls_master_key=key),
        occurred_at=t0,
    )
    await media_says(True, "ready", seconds=1)
    await becomes("ready", True)

    await media_says(False, "missing", seconds=2)
    gone = await becomes("failed", False)
    assert "no longer in storage" in gone["transcodeLog"]
    public = (await client.get(f"/api/episodes/{ep['id']}")).json()
    assert (public["transcodeState"], public["playable"]) == ("failed", False)

    await media_says(True, "ready", seconds=3)
    back = await becomes("ready", True)
    assert back["transcodeLog"] is None
    assert back["hlsMasterKey"] == key


async def test_media_back_in_storage_never_undoes_a_real_failure(
    client, make, auth, nats_url, event_namespace, catalog_app
):
    ep = await make.any_episode()
    eid = uuid.UUID(ep["id"])
    t0 = datetime.now(UTC)
    await publish(
        nats_url,
        event_namespace,
        TranscodeFailedV1(episode_id=eid, job_id=uuid.uuid4(), reason="ffmpeg exited with 1"),
        occurred_at=t0,
    )
    ready = await publish(
        nats_url,
        event_namespace,
        EpisodePlayabilityChangedV1(episode_id=eid, playable=True, state="ready"),
        occurred_at=t0 + timedelta(seconds=1),
    )
    await wait_until(lambda: inbox_count(catalog_app.state.runtime, ready.id))
    s = (await client.get(f"/api/admin/episodes/{ep['id']}", headers=auth.editor)).json()
    assert s["transcodeState"] == "failed"
    assert s["transcodeLog"].startswith("ffmpeg exited with 1")


async def test_failure_keeps_a_readable_reason(client, make, auth, nats_url, event_namespace):
    ep = await make.any_episode()
    await publish(
        nats_url,
        event_namespace,
        TranscodeFailedV1(
            episode_id=uuid.UUID(ep["id"]),
            job_id=uuid.uuid4(),
            reason="The source has no video stream.",
            log_tail="ffprobe: streams=[audio]",
        ),
    )

    async def failed():
        s = (await client.get(f"/api/admin/episodes/{ep['id']}", headers=auth.editor)).json()
        return s["transcodeState"] == "failed" and s

    s = await wait_until(failed)
    assert s["transcodeLog"].startswith("The source has no video stream.")
    assert "ffprobe" in s["transcodeLog"]
    public = (await client.get(f"/api/episodes/{ep['id']}")).json()
    assert public["transcodeState"] == "failed"
    assert "transcodeLog" not in public


async def test_events_for_unknown_episodes_and_poison_messages_do_not_block(
    client, catalog_app, make, auth, nats_url, event_namespace
):
    runtime = catalog_app.state.runtime
    ghost = await publish(
        nats_url, event_namespace, TranscodeStartedV1(episode_id=uuid.uuid4(), job_id=uuid.uuid4())
    )
    await wait_until(lambda: inbox_count(runtime, ghost.id))

    subject = subject_for(event_namespace.subject_root, "transcoder.transcode.started")
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream(timeout=30).publish(subject, b"{not json", stream=event_namespace.stream)
        await nc.jetstream(timeout=30).publish(
            subject,
            json.dumps(
                {
                    "id": str(uuid.uuid4()),
                    "type": "transcoder.transcode.started",
                    "version": 99,
                    "data": {},
                }
            ).encode(),
            stream=event_namespace.stream,
        )
    finally:
        await nc.close()
    durable = runtime.consumers.durable_name("transcoder.transcode.started")
    dlq = dead_letter_subject(event_namespace.subject_root, durable, "transcoder.transcode.started")
    [dead] = await wait_until(
        lambda: _at_least(stream_messages(nats_url, event_namespace.stream, dlq), 1)
    )
    assert dead.headers["Studio-Dead-Letter-Reason"].startswith("unreadable")

    # A version this consumer does not handle is skipped and counted (ADR 1),
    # not parked as unreadable.
    async def skipped() -> bool:
        metrics = (await client.get("/metrics")).text
        return (
            f'consumer_skipped_versions_total{{consumer="{durable}",service="catalog",version="99"}} 1.0'
            in metrics
        )

    await wait_until(skipped)

    # The consumer still works after the poison messages.
    ep = await make.any_episode()
    await publish(
        nats_url,
        event_namespace,
        TranscodeStartedV1(episode_id=uuid.UUID(ep["id"]), job_id=uuid.uuid4()),
    )

    async def processing():
        r = await client.get(f"/api/episodes/{ep['id']}")
        return r.json()["transcodeState"] == "processing"

    await wait_until(processing)


async def _at_least(coro, n: int):
    msgs = await coro
    return msgs if len(msgs) >= n else None
