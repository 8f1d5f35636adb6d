"""The jobs admin API: list, filter, inspect, retry; editors only."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from studio_transcoder.main import create_app

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
