"""Real ffmpeg, Postgres, NATS and an S3 API; media made by ffmpeg in the tests.

The transcoder's tests use a JetStream namespace of their own: the worker's
durable consumers read every ``episode.uploaded`` on the stream from the start,
and other suites' events (with sources that do not exist) must not queue up
in front of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import posixpath
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import select

from studio_common.db import Database
from studio_common.events import Envelope, EpisodeUploadedV1, EventPayload, subject_for
from studio_common.testing.jetstream import (
    envelope_of,
    publish_envelope,
    stream_messages,
    wait_until,
)
from studio_common.testing.plugin import EventNamespace
from studio_common.testing.s3 import s3_client, s3_with_bucket
from studio_common.testing.served import migrated_settings, served_app_fixtures
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.main import create_app
from studio_transcoder.models import Job
from studio_transcoder.worker import Worker

SERVICE_DIR = Path(__file__).resolve().parents[1]
# moto's server logs every request; the worker's own log says what it uploaded.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
BUCKET = "transcoder-test"


@pytest.fixture(scope="session")
async def transcoder_namespace(nats_url: str) -> AsyncIterator[EventNamespace]:
    token = uuid.uuid4().hex[:10]
    ns = EventNamespace(subject_root=f"tx{token}", stream=f"TX{token.upper()}")
    yield ns
    nc = await nats.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(ns.stream)
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def settings(
    service_settings: dict[str, Any],
    transcoder_namespace: EventNamespace,
    s3_endpoint_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> TranscoderSettings:
    values = {
        **migrated_settings(SERVICE_DIR, service_settings),
        "event_subject_root": transcoder_namespace.subject_root,
        "event_stream": transcoder_namespace.stream,
        "s3_endpoint_url": s3_endpoint_url,
        "s3_bucket": BUCKET,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test-secret",
        # Small and quick: 1 s segments and keyframes, thumbnails every second.
        "segment_seconds": 1.0,
        "keyframe_seconds": 1.0,
        "still_interval_seconds": 1.0,
        "sprite_interval_seconds": 0.5,
        "progress_interval_seconds": 0.3,
        "playlist_publish_seconds": 0.3,
        "retry_backoff_seconds": 0.2,
        "worker_ack_wait_seconds": 3.0,
        "worker_fetch_timeout_seconds": 0.5,
        "worker_metrics_port": 0,
        "shutdown_grace_seconds": 5.0,
        "jobs_gauge_refresh_seconds": 0.5,
        "work_dir": str(tmp_path_factory.mktemp("work")),
    }
    s = TranscoderSettings(**values)
    s3_with_bucket(s3_endpoint_url, BUCKET)
    return s


@pytest.fixture(scope="session")
def s3(settings: TranscoderSettings) -> Any:
    return s3_client(settings.s3_endpoint_url)


# The API process: the jobs endpoints (the worker publishes its own events).
transcoder_app, client = served_app_fixtures("transcoder_app", create_app, settings="settings")


@pytest.fixture(scope="session")
async def db(settings: TranscoderSettings) -> AsyncIterator[Database]:
    database = Database.connect(settings.database_url, pool_size=2)
    yield database
    await database.dispose()


@pytest.fixture
async def start_worker(
    settings: TranscoderSettings, transcoder_app: Any
) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Starts in-process workers; whatever still runs at the end is stopped without grace."""
    started: list[Worker] = []

    async def start(**overrides: Any) -> Worker:
        worker = Worker(settings.model_copy(update=overrides))
        await worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop(grace=0)


# --- media ------------------------------------------------------------------


class MediaFactory:
    """Test sources made by ffmpeg from lavfi generators, cached per session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def make(self, name: str, *args: str) -> Path:
        path = self.folder / name
        if not path.exists():
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)],
                check=True,
                timeout=120,
            )
        return path

    def video(
        self,
        name: str,
        *,
        size: str,
        seconds: float = 2,
        audio: bool = True,
        rate: int = 24,
        codec: list[str] | None = None,
    ) -> Path:
        inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
        maps = ["-map", "0:v"]
        if audio:
            inputs += [
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            ]
            maps += ["-map", "1:a", "-ac", "2", "-c:a", "aac"]
        video_codec = codec or ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        return self.make(name, *inputs, *maps, *video_codec)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("media"))


# --- driving a job ----------------------------------------------------------


class Jobs:
    """Uploads a source, publishes ``episode.uploaded`` and watches what happens."""

    def __init__(self, settings: TranscoderSettings, s3: Any, db: Database, nats_url: str) -> None:
        self.settings = settings
        self.s3 = s3
        self.db = db
        self.nats_url = nats_url

    def upload(self, path: Path | None, key: str, body: bytes | None = None) -> None:
        if path is not None:
            self.s3.upload_file(str(path), self.settings.s3_bucket, key)
        else:
            self.s3.put_object(Bucket=self.settings.s3_bucket, Key=key, Body=body or b"")

    def uploaded_event(self, source_key: str, **over: Any) -> EpisodeUploadedV1:
        values: dict[str, Any] = {
            "episode_id": uuid.uuid4(),
            "title_id": uuid.uuid4(),
            "title_slug": f"show-{uuid.uuid4().hex[:8]}",
            "season_id": uuid.uuid4(),
            "season_number": 1,
            "episode_number": 1,
            "source_key": source_key,
            **over,
        }
        return EpisodeUploadedV1(**values)

    async def publish(self, payload: EventPayload, envelope: Envelope | None = None) -> Envelope:
        env = envelope or Envelope.wrap(payload)
        return await publish_envelope(
            self.nats_url, self.settings.event_subject_root, self.settings.event_stream, env
        )

    async def submit(
        self, path: Path | None, *, body: bytes | None = None, **over: Any
    ) -> EpisodeUploadedV1:
        key = f"uploads/{uuid.uuid4().hex}/{path.name if path else 'source.mp4'}"
        self.upload(path, key, body)
        event = self.uploaded_event(key, **over)
        await self.publish(event)
        return event

    async def job(self, episode_id: uuid.UUID) -> Job | None:
        async with self.db.transaction() as session:
            return (
                await session.scalars(
                    select(Job)
                    .where(Job.episode_id == episode_id)
                    .execution_options(populate_existing=True)
                )
            ).first()

    async def job_by_id(self, job_id: uuid.UUID) -> Job:
        async with self.db.transaction() as session:
            found = await session.get(Job, job_id, populate_existing=True)
            assert found is not None
            return found

    async def jobs_of(self, episode_id: uuid.UUID) -> list[Job]:
        """Every job of the episode (one per source), newest first."""
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(Job)
                .where(Job.episode_id == episode_id)
                .order_by(Job.created_at.desc())
                .execution_options(populate_existing=True)
            )
            return list(rows.all())

    async def wait_for(self, episode_id: uuid.UUID, *statuses: str, within: float = 60.0) -> Job:
        async def check() -> Job | None:
            job = await self.job(episode_id)
            return job if job is not None and job.status in statuses else None

        job: Job = await wait_until(check, within=within, interval=0.1)
        return job

    async def events(
        self, event_type: str, job_id: uuid.UUID | None = None, episode_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        msgs = await stream_messages(
            self.nats_url,
            self.settings.event_stream,
            subject_for(self.settings.event_subject_root, event_type),
        )
        out = []
        for m in msgs:
            env = envelope_of(m)
            data = env["data"]
            if job_id is not None and data.get("jobId") != str(job_id):
                continue
            if episode_id is not None and data.get("episodeId") != str(episode_id):
                continue
            out.append(env)
        return out

    async def wait_events(
        self, event_type: str, n: int = 1, *, within: float = 20.0, **match: Any
    ) -> list[dict[str, Any]]:
        async def check() -> list[dict[str, Any]] | None:
            found = await self.events(event_type, **match)
            return found if len(found) >= n else None

        found: list[dict[str, Any]] = await wait_until(check, within=within, interval=0.2)
        return found

    def get_text(self, key: str) -> str:
        body = self.s3.get_object(Bucket=self.settings.s3_bucket, Key=key)["Body"].read()
        return str(body.decode())

    def url(self, key: str) -> str:
        url: str = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.settings.s3_bucket, "Key": key}, ExpiresIn=300
        )
        return url

    async def follow(self, master_key: str) -> dict[str, Any]:
        """Walks master → media playlists → every segment over HTTP, as a player would.

        Relative URIs resolve against the playlist's key, each object is fetched
        with a presigned GET. Returns the master, each playlist's text by key,
        and how many segments each lists.
        """

        def resolve(base_key: str, uri: str) -> str:
            return posixpath.normpath(posixpath.join(posixpath.dirname(base_key), uri))

        playlists: dict[str, str] = {}
        segments: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(self.url(master_key))
            assert r.status_code == 200, master_key
            master = r.text
            assert master.startswith("#EXTM3U")
            uris = re.findall(r'URI="([^"]+)"', master)
            uris += [line for line in master.splitlines() if line and not line.startswith("#")]
            for uri in uris:
                key = resolve(master_key, uri)
                r = await http.get(self.url(key))
                assert r.status_code == 200, key
                playlists[key] = r.text
                entries = [
                    line for line in r.text.splitlines() if line and not line.startswith("#")
                ]
                segments[key] = len(entries)

                async def fetch(entry: str, base: str = key) -> None:
                    seg = await http.get(self.url(resolve(base, entry)))
                    assert seg.status_code == 200, entry
                    if entry.endswith(".ts"):
                        assert seg.content[:1] == b"\x47", entry  # MPEG-TS sync byte
                    elif entry.endswith(".vtt"):
                        assert seg.text.startswith("WEBVTT"), entry

                await asyncio.gather(*(fetch(e) for e in entries))
        return {"master": master, "playlists": playlists, "segments": segments}

    def size(self, key: str) -> int:
        head = self.s3.head_object(Bucket=self.settings.s3_bucket, Key=key)
        return int(head["ContentLength"])

    def download(self, key: str, path: Path) -> Path:
        self.s3.download_file(self.settings.s3_bucket, key, str(path))
        return path

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.s3_bucket, Prefix=prefix
        ):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out


@pytest.fixture
def jobs(settings: TranscoderSettings, s3: Any, db: Database, nats_url: str) -> Jobs:
    return Jobs(settings, s3, db, nats_url)


def probe(path: Path | str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *args, "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@pytest.fixture(scope="session")
def ffprobe() -> Callable[..., dict[str, Any]]:
    return probe


@pytest.fixture
def processes() -> Callable[..., list[int]]:
    """``processes(text, program="")``: the pids of live processes whose command line
    starts with ``program`` and names ``text`` (the worker's ffmpeg, by its folder)."""

    def find(text: str, program: str = "") -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(program.encode()) and text.encode() in cmdline:
                found.append(int(entry.name))
        return found

    return find
