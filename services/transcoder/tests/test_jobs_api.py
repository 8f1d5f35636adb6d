"""The jobs admin API: list, filter, inspect, retry; editors only."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from studio_transcoder import partstate
from studio_transcoder.failures import TransientFailure
from studio_transcoder.main import create_app
from studio_transcoder.media.chunks import plan_chunks
from studio_transcoder.naming import new_version, output_prefix
from studio_transcoder.repository import JobRepository

ADMIN_ROUTES = sorted(
    (method.upper(), path)
    for path, item in create_app().openapi()["paths"].items()
    if path.startswith("/api/admin")
    for method in item
)


def test_the_admin_routes_are_found():
    assert ADMIN_ROUTES == [
        ("GET", "/api/admin/jobs"),
        ("GET", "/api/admin/jobs/{job_id}"),
        ("POST", "/api/admin/jobs/{job_id}/retry"),
    ]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_need_an_editor(client, auth, method, path):
    url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
    assert (await client.request(method, url)).status_code == 401
    assert (await client.request(method, url, headers=auth.viewer)).status_code == 403
    r = await client.request(method, url, headers=auth.editor)
    assert r.status_code in (200, 404), r.text


async def test_a_failed_job_is_listed_inspected_and_retried(
    start_worker, client, auth, jobs, media
):
    await start_worker()
    event = jobs.uploaded_event(f"uploads/{uuid.uuid4().hex}/source.mp4")
    jobs.upload(None, event.source_key, os.urandom(10_000))
    await jobs.publish(event)
    job = await jobs.wait_for(event.episode_id, "failed")

    r = await client.get(
        "/api/admin/jobs", params={"status": "failed", "pageSize": 100}, headers=auth.editor
    )
    assert r.status_code == 200
    page = r.json()
    assert page["page"] == 1
    assert page["total"] >= 1
    assert all(item["status"] == "failed" for item in page["items"])
    assert str(job.id) in {item["id"] for item in page["items"]}

    r = await client.get(f"/api/admin/jobs/{job.id}", headers=auth.editor)
    assert r.status_code == 200
    detail = r.json()
    assert detail["errorCode"] == "not_video"
    assert detail["payload"]["sourceKey"] == event.source_key
    assert detail["attempts"] == 1
    assert "attempt 1 of 3 started" in detail["logTail"]

    # The editor fixes the upload and asks again.
    jobs.upload(media.video("fixed.mp4", size="320x240", seconds=1), event.source_key)
    r = await client.post(f"/api/admin/jobs/{job.id}/retry", headers=auth.editor)
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["attempts"]) == ("queued", 0)
    job = await jobs.wait_for(event.episode_id, "ready", "failed")
    assert (job.status, job.attempts) == ("ready", 1)
    retry = await jobs.wait_events("transcoder.job.retry_requested", job_id=job.id)
    assert retry[0]["data"]["requestedBy"]

    # Only failed jobs can be retried.
    r = await client.post(f"/api/admin/jobs/{job.id}/retry", headers=auth.editor)
    assert r.status_code == 409
    assert r.json()["type"] == "urn:studio:problem:conflict"


async def test_a_split_job_shows_its_parts_in_queue_order(client, auth, db, settings):
    # A job split into parts as the worker does (record_plan), then failed by
    # one part: the others done or cancelled. A failed job's part messages are
    # dropped by any worker that takes them.
    chunked = settings.model_copy(
        update={"chunking": True, "chunk_min_seconds": 5.0, "chunk_segments": 4}
    )
    chunks = plan_chunks(12.0, chunked)
    async with db.transaction() as session:
        episode_id = uuid.uuid4()
        job = await JobRepository(session).admit(
            episode_id=episode_id,
            source_key=f"uploads/{uuid.uuid4().hex}/source.mp4",
            event_id=uuid.uuid4(),
            payload={},
        )
        job.status = "processing"
        job.attempts = 1
        job.output_prefix = output_prefix(episode_id, new_version())
        parts = await partstate.record_plan(session, job, chunks, partstate.SIDE_KINDS)
        first, failing, *_ = parts
        partstate.begin_part(first)
        partstate.part_done(first, {}, 1.25)
        partstate.begin_part(failing)
        partstate.part_failed(failing, TransientFailure("ffmpeg", "the encoder stopped"))
        await partstate.cancel_parts(session, [job.id])
        job.status = "failed"
        queued = [(p.kind, p.index) for p in parts]

    r = await client.get(f"/api/admin/jobs/{job.id}", headers=auth.viewer)
    assert r.status_code == 403
    r = await client.get(f"/api/admin/jobs/{job.id}", headers=auth.editor)
    assert r.status_code == 200, r.text
    shown = r.json()["parts"]
    assert [(p["kind"], p["index"]) for p in shown] == queued
    assert len(shown) == len(chunks) + len(partstate.SIDE_KINDS)
    assert shown[0] == {
        "kind": "head",
        "index": 0,
        "state": "done",
        "attempts": 1,
        "startSec": chunks[0].start,
        "endSec": chunks[0].end,
        "firstSegment": 0,
        "segmentCount": chunks[0].segment_count,
        "encodeSeconds": 1.25,
        "errorCode": None,
        "errorReason": None,
    }
    assert (shown[1]["state"], shown[1]["attempts"]) == ("cancelled", 1)
    assert (shown[1]["errorCode"], shown[1]["errorReason"]) == ("ffmpeg", "the encoder stopped")
    assert {(p["state"], p["attempts"]) for p in shown[2:]} == {("cancelled", 0)}
    video = [p for p in shown if p["kind"] in ("head", "video")]
    assert [p["firstSegment"] for p in video] == [c.first_segment for c in chunks]


async def test_a_one_pass_job_has_no_parts(client, auth, db):
    async with db.transaction() as session:
        job = await JobRepository(session).admit(
            episode_id=uuid.uuid4(),
            source_key=f"uploads/{uuid.uuid4().hex}/source.mp4",
            event_id=uuid.uuid4(),
            payload={},
        )
    r = await client.get(f"/api/admin/jobs/{job.id}", headers=auth.editor)
    assert r.status_code == 200, r.text
    assert r.json()["parts"] == []


async def test_listing_validates_its_parameters(client, auth):
    r = await client.get("/api/admin/jobs", params={"pageSize": 1000}, headers=auth.editor)
    assert r.status_code == 422
    r = await client.get("/api/admin/jobs", params={"status": "done"}, headers=auth.editor)
    assert r.status_code == 422
    r = await client.get(f"/api/admin/jobs/{uuid.uuid4()}", headers=auth.editor)
    assert r.status_code == 404


async def test_the_api_exports_jobs_by_status(client, transcoder_app, jobs):
    from studio_common.testing.jetstream import wait_until

    async def exported():
        text = (await client.get("/metrics")).text
        return 'transcoder_jobs{status="ready"}' in text and text

    text = await wait_until(exported, within=5)
    assert 'transcoder_jobs{status="failed"}' in text
