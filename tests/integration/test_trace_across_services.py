"""One trace from `POST /api/admin/episodes` to catalog's state update.

catalog (in process) → its outbox relay → the transcoder worker's job (in
process, real ffmpeg, S3 API) → the transcoder's outbox relay → catalog's
consumers. Spans are collected in memory by the ``span_exporter`` fixture.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind

from studio_catalog.config import CatalogSettings
from studio_catalog.main import create_app as create_catalog
from studio_catalog.subscribers import on_upload_verified
from studio_common.events import Envelope, UploadVerifiedV1
from studio_common.migrations import upgrade
from studio_common.testing.plugin import serve_app
from studio_common.testing.s3 import s3_with_bucket
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.main import create_app as create_transcoder
from studio_transcoder.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "trace-test"


def make_source(path: Path) -> Path:
    subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=2"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"),
            *("-map", "0:v", "-map", "1:a", "-ac", "2", "-c:a", "aac"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


async def test_one_trace_links_the_request_the_relay_the_job_and_the_state_update(
    span_exporter: Any,
    own_settings: dict[str, Any],
    s3_endpoint_url: str,
    auth: Any,
    tmp_path: Path,
) -> None:
    # A namespace of our own: the worker takes every episode.uploaded on its stream.
    common = {
        **own_settings,
        "s3_endpoint_url": s3_endpoint_url,
        "s3_bucket": BUCKET,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test-secret",
    }
    for name in ("catalog", "transcoder"):
        upgrade(ROOT / "services" / name, common["database_url"])
    s3 = s3_with_bucket(s3_endpoint_url, BUCKET)
    upload_id = uuid.uuid4()
    key = f"uploads/{upload_id}/source.mp4"
    s3.upload_file(str(make_source(tmp_path / "source.mp4")), BUCKET, key)

    transcoder_settings = TranscoderSettings(
        **common,
        worker_metrics_port=0,
        worker_fetch_timeout_seconds=0.5,
        segment_seconds=1.0,
        keyframe_seconds=1.0,
        work_dir=str(tmp_path),
    )
    span_exporter.clear()
    catalog_app = create_catalog(CatalogSettings(**common))
    transcoder_app = create_transcoder(transcoder_settings)
    worker = Worker(transcoder_settings)
    admin = auth.admin
    async with serve_app(catalog_app) as catalog, serve_app(transcoder_app):
        await worker.start()
        try:
            # What media's verification of the upload leaves in catalog.
            verified = UploadVerifiedV1(
                upload_id=upload_id,
                key=key,
                kind="source",
                owner="trace-editor",
                size=1,
                content_type="video/mp4",
                format="mp4",
                filename="source.mp4",
            )
            async with catalog_app.state.runtime.database.transaction() as session:
                await on_upload_verified(verified, Envelope.wrap(verified), session)
            slug = f"trace-{uuid.uuid4().hex[:8]}"
            title = await catalog.post(
                "/api/admin/titles",
                json={"slug": slug, "name": "Trace", "type": "series"},
                headers=admin,
            )
            assert title.status_code == 201, title.text
            season = await catalog.post(
                "/api/admin/seasons",
                json={"titleId": title.json()["id"], "number": 1},
                headers=admin,
            )
            assert season.status_code == 201, season.text
            created = await catalog.post(
                "/api/admin/episodes",
                json={
                    "seasonId": season.json()["id"],
                    "number": 1,
                    "name": "Traced",
                    "sourceKey": key,
                },
                headers=admin,
            )
            assert created.status_code == 201, created.text
            episode_id = created.json()["id"]
            deadline = time.monotonic() + 90
            while True:
                r = await catalog.get(f"/api/admin/episodes/{episode_id}", headers=admin)
                state = r.json()["transcodeState"]
                if state in ("ready", "failed"):
                    break
                assert time.monotonic() < deadline, f"still {state}"
                await asyncio.sleep(0.1)
            assert state == "ready", r.json()["transcodeLog"]
            await asyncio.sleep(0.3)  # the last consumer span ends after the commit
        finally:
            await worker.stop(grace=0)

    spans = span_exporter.get_finished_spans()
    [request] = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER
        and s.name.startswith("POST")
        and s.attributes.get("http.route") == "/api/admin/episodes"
    ]
    trace_id = request.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]

    def one(name: str, kind: SpanKind, scope: str) -> Any:
        found = [s for s in in_trace if s.name == name and s.kind == kind]
        found = [s for s in found if s.instrumentation_scope.name == scope]
        assert found, f"no {kind.name} span {name!r} ({scope}) in the request's trace"
        return found[0]

    published = one("catalog.episode.uploaded publish", SpanKind.PRODUCER, "studio.outbox")
    job = one("catalog.episode.uploaded process", SpanKind.CONSUMER, "studio.transcoder-worker")
    assert job.parent.span_id == published.context.span_id
    completed = one("transcoder.transcode.completed publish", SpanKind.PRODUCER, "studio.outbox")
    assert completed.parent.span_id == job.context.span_id
    one("transcoder.transcode.started publish", SpanKind.PRODUCER, "studio.outbox")
    applied = one("transcoder.transcode.completed process", SpanKind.CONSUMER, "studio.catalog")
    assert applied.parent.span_id == completed.context.span_id
    # The relay's publish continues the request (through the outbox row's context).
    chain = {s.context.span_id: s for s in in_trace}
    parent = published.parent
    while parent is not None and parent.span_id != request.context.span_id:
        parent = chain[parent.span_id].parent
    assert parent is not None, "the publish does not descend from the request"
