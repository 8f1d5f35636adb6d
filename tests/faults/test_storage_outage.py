"""S3 goes away mid-transcode with jobs queued, and comes back with its data.

A private moto server (its own process, on a free port) holds the objects; the
worker reaches it only through a TCP proxy the test controls. Cutting the proxy
resets every open connection and every new one, as a store that went away
does, while moto keeps what it holds (restarting moto in server mode would
lose it all). Every episode must end ``ready`` with its attempts untouched, no
job may be taken while storage is away, and no half-written folder may stay.

The outage lasts ``STUDIO_FAULT_S3_OUTAGE_SECONDS`` (35 by default: longer than
the old retry budget of 10 s + 20 s), in ``make test``; ``make faults-long``
runs it for 2 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from studio_common.db import Database
from studio_common.events import EpisodeUploadedV1
from studio_common.migrations import upgrade
from studio_common.testing.infra import free_port, reachable
from studio_common.testing.jetstream import wait_until
from studio_common.testing.s3 import s3_with_bucket
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.models import Job, worker_messaging
from studio_transcoder.worker import Worker, durable_name

from .conftest import publish_uploaded

TRANSCODER_DIR = Path(__file__).resolve().parents[2] / "services" / "transcoder"
BUCKET = "faults"
OUTAGE_SECONDS = float(os.environ.get("STUDIO_FAULT_S3_OUTAGE_SECONDS", "35"))
# A chunked job's outage only has to outlast the redelivery of a part (ack
# wait 6 s) and a retry's backoff (10 s): the retry budget the one-pass test's
# longer outage is about is the same code.
CHUNK_OUTAGE_SECONDS = OUTAGE_SECONDS / 3
SOURCE_SECONDS = 8
EPISODES = 3

pytestmark = pytest.mark.timeout(240 + 3 * OUTAGE_SECONDS)


class CuttableProxy:
    """A TCP proxy in front of the store that can drop every connection at will."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.cut = False
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_off(self) -> None:
        self.cut = True
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    def restore(self) -> None:
        self.cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(writer)
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
            for w in (writer, up_writer):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.cut:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            _reset(writer)

    async def stop(self) -> None:
        self.cut_off()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a store that went away does (not a polite FIN)."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    writer.transport.abort()


@pytest.fixture(scope="module")
def moto_port() -> Iterator[int]:
    """A private moto server in a process of its own."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not reachable("127.0.0.1", port):
            assert proc.poll() is None, "moto did not start"
            assert time.monotonic() < deadline, "moto did not answer"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def proxy(moto_port: int) -> AsyncIterator[CuttableProxy]:
    p = CuttableProxy(moto_port)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def s3(moto_port: int) -> Any:
    """The test's own way to the store, around the proxy."""
    client = s3_with_bucket(f"http://127.0.0.1:{moto_port}", BUCKET)
    return client


@pytest.fixture
async def settings(
    service_settings: dict[str, Any], event_namespaces: Any, proxy: CuttableProxy, tmp_path: Path
) -> TranscoderSettings:
    upgrade(TRANSCODER_DIR, service_settings["database_url"])
    ns = event_namespaces.new()
    return TranscoderSettings(
        **{
            **service_settings,
            "event_subject_root": ns.subject_root,
            "event_stream": ns.stream,
            "s3_endpoint_url": proxy.url,
            "s3_bucket": BUCKET,
            "s3_access_key_id": "test",
            "s3_secret_access_key": "test-secret",
            "ladder": "240:300",
            "segment_seconds": 1.0,
            "keyframe_seconds": 1.0,
            "still_interval_seconds": 2.0,
            "sprite_interval_seconds": 1.0,
            "progress_interval_seconds": 0.5,
            "playlist_publish_seconds": 0.5,
            # Realtime reading: each encode takes the source's length, so the
            # outage lands in the middle of one.
            "input_read_rate": 1.0,
            "source_access": "stream",
            # The old defaults: an outage that used attempts would fail jobs.
            "max_attempts": 3,
            "retry_backoff_seconds": 10.0,
            "worker_ack_wait_seconds": 6.0,
            "worker_fetch_timeout_seconds": 0.5,
            "worker_metrics_port": 0,
            "storage_outage_tolerance_seconds": 300.0,
            "storage_probe_max_seconds": 2.0,
            "work_dir": str(tmp_path),
        }
    )


@pytest.fixture
async def db(settings: TranscoderSettings) -> AsyncIterator[Database]:
    database = Database.connect(settings.database_url, pool_size=2)
    yield database
    await database.dispose()


def make_source(path: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=24:duration={SOURCE_SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SOURCE_SECONDS}",
            "-map", "0:v", "-map", "1:a", "-ac", "2", "-c:a", "aac",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


async def submit(settings: TranscoderSettings, s3: Any, source: Path) -> uuid.UUID:
    key = f"uploads/{uuid.uuid4()}/{source.name}"
    s3.upload_file(str(source), BUCKET, key)
    return await publish_uploaded(settings, key)


async def jobs_of(db: Database, episodes: list[uuid.UUID]) -> dict[uuid.UUID, Job]:
    async with db.transaction() as session:
        rows = await session.scalars(
            select(Job)
            .where(Job.episode_id.in_(episodes))
            .execution_options(populate_existing=True)
        )
        return {job.episode_id: job for job in rows}


def keys(s3: Any, prefix: str) -> list[str]:
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


async def segments_listed(s3: Any, master_key: str) -> dict[str, int]:
    """Walks master → media playlists → segments as a player would; segments per playlist."""

    def url(key: str) -> str:
        return str(
            s3.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
            )
        )

    def resolve(base: str, uri: str) -> str:
        return posixpath.normpath(posixpath.join(posixpath.dirname(base), uri))

    counts: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        master = (await http.get(url(master_key))).text
        uris = re.findall(r'URI="([^"]+)"', master)
        uris += [line for line in master.splitlines() if line and not line.startswith("#")]
        for uri in uris:
            key = resolve(master_key, uri)
            text = (await http.get(url(key))).text
            assert text.endswith("#EXT-X-ENDLIST\n"), key
            entries = [line for line in text.splitlines() if line and not line.startswith("#")]
            for entry in entries:
                r = await http.get(url(resolve(key, entry)))
                assert r.status_code == 200, entry
            counts[key] = len(entries)
    return counts


async def test_an_s3_outage_mid_transcode_fails_no_job(
    settings: TranscoderSettings,
    proxy: CuttableProxy,
    s3: Any,
    db: Database,
    tmp_path: Path,
) -> None:
    source = make_source(tmp_path / "episode.mp4")
    worker = Worker(settings)
    await worker.start()
    try:
        episodes = [await submit(settings, s3, source) for _ in range(EPISODES)]

        # Mid-transcode of the first job, with the others queued behind it.
        async def encoding() -> uuid.UUID | None:
            for job in (await jobs_of(db, episodes)).values():
                if job.status == "processing" and job.progress >= 20:
                    return job.episode_id
            return None

        first = await wait_until(encoding, within=60, interval=0.2)
        proxy.cut_off()
        cut_at = time.monotonic()
        claimed_at_cut = set(await jobs_of(db, episodes))
        while time.monotonic() - cut_at < OUTAGE_SECONDS:
            await asyncio.sleep(1)
            # Storage is away: nothing new is taken, nothing fails.
            now = await jobs_of(db, episodes)
            assert set(now) == claimed_at_cut, "a job was taken while storage was away"
            assert all(j.status in ("queued", "processing") for j in now.values()), {
                j.episode_id: (j.status, j.error_reason) for j in now.values()
            }
        assert not worker.gate.is_up  # type: ignore[union-attr]
        proxy.restore()

        async def all_done() -> dict[uuid.UUID, Job] | None:
            found = await jobs_of(db, episodes)
            finished = [j for j in found.values() if j.status in ("ready", "failed")]
            return found if len(finished) == EPISODES else None

        done = await wait_until(all_done, within=120 + 20 * EPISODES, interval=0.5)
        # The in-progress acks went on through the outage: no message was handed
        # to a worker a second time.
        assert worker.js is not None
        info = await worker.js.consumer_info(
            settings.event_stream, durable_name(EpisodeUploadedV1.event_type)
        )
        assert info.num_redelivered == 0
    finally:
        await worker.stop(grace=0)

    # Every episode ready, no attempt used up, no retry by hand.
    assert {e: (j.status, j.attempts) for e, j in done.items()} == {
        e: ("ready", 1) for e in episodes
    }, {e: (j.status, j.attempts, j.error_reason) for e, j in done.items()}

    # What the worker announced (its own outbox, which its relay publishes).
    async with db.transaction() as session:
        outbox = worker_messaging.outbox
        rows = await session.execute(
            select(outbox.c.event_type, outbox.c.envelope).order_by(outbox.c.created_at)
        )
        announced = [
            (kind, env["data"])
            for kind, env in rows
            if env["data"].get("episodeId") in {str(e) for e in episodes}
        ]
    assert [d for kind, d in announced if kind == "transcoder.transcode.failed"] == []
    started = [d for kind, d in announced if kind == "transcoder.transcode.started"]
    first_starts = [s for s in started if s["episodeId"] == str(first)]
    # The attempt the outage broke was redone in a new folder, with the same number.
    assert [s["attempt"] for s in first_starts] == [1, 1]
    assert first_starts[0]["hlsPrefix"] != first_starts[1]["hlsPrefix"]

    for episode_id, job in done.items():
        # Only the final folder is in storage, whole: every segment of the source.
        folder = f"hls/{episode_id}/"
        assert {k[: len(job.output_prefix or "")] for k in keys(s3, folder)} == {job.output_prefix}
        counts = await segments_listed(s3, job.result["hlsMasterKey"])
        video = [n for key, n in counts.items() if "/240p/" in key]
        assert video == [SOURCE_SECONDS], counts
        assert all(n >= SOURCE_SECONDS for n in counts.values()), counts


async def test_a_worker_stopped_while_storage_is_away_hands_the_job_back_uncounted(
    settings: TranscoderSettings,
    proxy: CuttableProxy,
    s3: Any,
    db: Database,
    tmp_path: Path,
) -> None:
    source = make_source(tmp_path / "episode.mp4")
    worker = Worker(settings)
    await worker.start()
    try:
        episode = await submit(settings, s3, source)

        async def encoding() -> bool:
            job = (await jobs_of(db, [episode])).get(episode)
            return job is not None and job.status == "processing" and job.progress >= 20

        await wait_until(encoding, within=60, interval=0.2)
        proxy.cut_off()
        # The attempt waits for storage (a step to retry, or to redo the attempt).
        await wait_until(lambda: worker.gate is not None and not worker.gate.is_up, within=30)
        await asyncio.sleep(5)
    finally:
        await worker.stop(grace=0.5)
    job = (await jobs_of(db, [episode]))[episode]
    assert (job.status, job.attempts) == ("queued", 0), job.log_tail
    assert "handed back: the worker shut down" in (job.log_tail or "")

    proxy.restore()
    again = Worker(settings)
    await again.start()
    try:

        async def ready() -> Job | None:
            job = (await jobs_of(db, [episode])).get(episode)
            return job if job is not None and job.status in ("ready", "failed") else None

        job = await wait_until(ready, within=90, interval=0.5)
    finally:
        await again.stop(grace=0)
    assert (job.status, job.attempts) == ("ready", 1), job.error_reason


async def announced_for(db: Database, episode: uuid.UUID) -> list[str]:
    """The event types the worker's outbox holds for an episode."""
    async with db.transaction() as session:
        outbox = worker_messaging.outbox
        rows = await session.execute(select(outbox.c.event_type, outbox.c.envelope))
        return [kind for kind, env in rows if env["data"].get("episodeId") == str(episode)]


async def assert_completed_once(db: Database, s3: Any, episode: uuid.UUID, done: Job) -> None:
    """Completed once, never failed, every segment of the 240p rendition listed."""
    announced = await announced_for(db, episode)
    assert "transcoder.transcode.failed" not in announced
    assert announced.count("transcoder.transcode.completed") == 1
    counts = await segments_listed(s3, done.result["hlsMasterKey"])
    video = [n for key, n in counts.items() if "/240p/" in key]
    assert video == [SOURCE_SECONDS], counts


async def parts_of(db: Database, job_id: uuid.UUID) -> list[Any]:
    """A chunked job's parts, read afresh."""
    from studio_transcoder.models import TranscodePart

    async with db.transaction() as session:
        rows = await session.scalars(
            select(TranscodePart)
            .where(TranscodePart.job_id == job_id)
            .execution_options(populate_existing=True)
        )
        return list(rows)


async def test_an_s3_outage_mid_chunk_uses_no_attempt_of_any_part(
    settings: TranscoderSettings,
    proxy: CuttableProxy,
    s3: Any,
    db: Database,
    tmp_path: Path,
) -> None:
    """A chunked job (ADR 11) with a chunk in progress when storage goes away
    and parts queued behind it: nothing fails, no part uses an attempt, the
    job ends ready once with every segment listed."""
    from studio_transcoder.models import TranscodePart

    chunked = settings.model_copy(
        update={"chunking": True, "chunk_min_seconds": 5.0, "chunk_segments": 2}
    )
    source = make_source(tmp_path / "episode.mp4")
    worker = Worker(chunked)
    await worker.start()

    async def parts(job_id: uuid.UUID) -> list[TranscodePart]:
        return await parts_of(db, job_id)

    try:
        episode = await submit(chunked, s3, source)

        async def chunk_encoding() -> Job | None:
            job = (await jobs_of(db, [episode])).get(episode)
            if job is None:
                return None
            found = [p for p in await parts(job.id) if p.kind == "video" and p.index > 0]
            return job if any(p.state == "processing" for p in found) else None

        job = await wait_until(chunk_encoding, within=90, interval=0.2)
        await asyncio.sleep(0.5)
        proxy.cut_off()
        await asyncio.sleep(CHUNK_OUTAGE_SECONDS)
        # (A chunk uploads once its ffmpeg ends, so the worker may not have met
        # the outage yet: its ffmpeg is still trying to read the source.)
        now = (await jobs_of(db, [episode]))[episode]
        assert now.status == "processing", now.error_reason
        proxy.restore()

        async def finished() -> Job | None:
            found = (await jobs_of(db, [episode]))[episode]
            return found if found.status in ("ready", "failed") else None

        done = await wait_until(finished, within=180, interval=0.5)
    finally:
        await worker.stop(grace=0)

    assert (done.status, done.attempts) == ("ready", 1), done.error_reason
    assert {(p.kind, p.index, p.state, p.attempts) for p in await parts(job.id)} == {
        (p.kind, p.index, "done", 1) for p in await parts(job.id)
    }
    await assert_completed_once(db, s3, episode, done)
    announced = await announced_for(db, episode)
    assert announced.count("transcoder.transcode.started") == 1


async def test_a_part_whose_outage_outlasts_the_tolerance_is_handed_back_uncounted(
    settings: TranscoderSettings,
    proxy: CuttableProxy,
    s3: Any,
    db: Database,
    tmp_path: Path,
) -> None:
    """A part (ADR 11) whose storage stays away longer than the tolerance is
    handed back to the queue: queued again, its attempt not counted, its
    message redelivered. Once storage is back the job ends ready and the
    outage used no attempt of any part."""
    from studio_common.events import TranscodePartRequestedV1
    from studio_transcoder.models import TranscodePart

    tolerance = 2.0
    chunked = settings.model_copy(
        update={
            "chunking": True,
            "chunk_min_seconds": 5.0,
            "chunk_segments": 2,
            "storage_outage_tolerance_seconds": tolerance,
            # A downloaded source: the part meets the outage in storage calls
            # (the gate and its tolerance), not in ffmpeg's own reconnects.
            "source_access": "download",
        }
    )
    source = make_source(tmp_path / "episode.mp4")
    worker = Worker(chunked)
    await worker.start()

    async def parts(job_id: uuid.UUID) -> dict[uuid.UUID, TranscodePart]:
        return {p.id: p for p in await parts_of(db, job_id)}

    try:
        episode = await submit(chunked, s3, source)

        async def part_running() -> Job | None:
            job = (await jobs_of(db, [episode])).get(episode)
            if job is None:
                return None
            found = (await parts(job.id)).values()
            return job if any(p.state == "processing" for p in found) else None

        job = await wait_until(part_running, within=90, interval=0.2)
        proxy.cut_off()
        cut_at = time.monotonic()
        # Every part seen running while storage is away; one of them must come back.
        running: set[uuid.UUID] = set()

        async def handed_back() -> TranscodePart | None:
            found = await parts(job.id)
            running.update(i for i, p in found.items() if p.state == "processing")
            back = [
                found[i] for i in running if (found[i].state, found[i].attempts) == ("queued", 0)
            ]
            return back[0] if back else None

        victim = await wait_until(handed_back, within=60, interval=0.2)
        assert time.monotonic() - cut_at >= tolerance
        assert not worker.gate.is_up
        # Handed back while storage is still away, and not taken again meanwhile.
        await asyncio.sleep(3)
        again = (await parts(job.id))[victim.id]
        assert (again.state, again.attempts) == ("queued", 0)
        now = (await jobs_of(db, [episode]))[episode]
        assert (now.status, now.attempts) == ("processing", 1), now.error_reason
        proxy.restore()

        async def finished() -> Job | None:
            found = (await jobs_of(db, [episode]))[episode]
            return found if found.status in ("ready", "failed") else None

        done = await wait_until(finished, within=180, interval=0.5)
        # The handed-back message was delivered again: more deliveries than parts.
        info = await worker.js.consumer_info(
            chunked.event_stream, durable_name(TranscodePartRequestedV1.event_type)
        )
        after = await parts(job.id)
        assert info.delivered.consumer_seq > len(after)
        # Counted as handed back only: storage did not answer within the tolerance.
        outcomes = {
            outcome: worker.registry.get_sample_value(
                "transcoder_job_attempts_total", {"outcome": outcome}
            )
            for outcome in ("handed_back", "redone_after_outage")
        }
        assert (outcomes["handed_back"] or 0) >= 1, outcomes
        assert not outcomes["redone_after_outage"], outcomes
    finally:
        await worker.stop(grace=0)

    assert (done.status, done.attempts) == ("ready", 1), done.error_reason
    assert {(p.kind, p.index, p.state, p.attempts) for p in after.values()} == {
        (p.kind, p.index, "done", 1) for p in after.values()
    }
    await assert_completed_once(db, s3, episode, done)


async def test_a_worker_stopped_while_storage_is_away_hands_its_part_back_uncounted(
    settings: TranscoderSettings,
    proxy: CuttableProxy,
    s3: Any,
    db: Database,
    tmp_path: Path,
) -> None:
    """A worker stopped (SIGTERM's grace run out) while its part waits for
    storage hands the part back as it does a job: queued, not counted."""
    from studio_transcoder.models import TranscodePart

    chunked = settings.model_copy(
        update={"chunking": True, "chunk_min_seconds": 5.0, "chunk_segments": 2}
    )
    source = make_source(tmp_path / "episode.mp4")

    async def parts(job_id: uuid.UUID) -> list[TranscodePart]:
        return await parts_of(db, job_id)

    worker = Worker(chunked)
    await worker.start()
    try:
        episode = await submit(chunked, s3, source)

        async def chunk_encoding() -> Job | None:
            job = (await jobs_of(db, [episode])).get(episode)
            if job is None:
                return None
            # The first part taken (the head) is as good as any: the hand-back is the runner's.
            return job if any(p.state == "processing" for p in await parts(job.id)) else None

        job = await wait_until(chunk_encoding, within=90, interval=0.2)
        await asyncio.sleep(0.5)
        proxy.cut_off()
        # The part waits for storage (a step to retry, or the part to hand back).
        await wait_until(lambda: not worker.gate.is_up, within=60)
        await asyncio.sleep(2)
    finally:
        await worker.stop(grace=0.5)
    stopped = await parts(job.id)
    assert not [p for p in stopped if p.state == "processing"]
    assert {(p.state, p.attempts) for p in stopped} <= {("done", 1), ("queued", 0)}, [
        (p.kind, p.index, p.state, p.attempts) for p in stopped
    ]

    # That such a part is then taken again and the job ends ready with no
    # attempt counted is test_a_part_whose_outage_outlasts_the_tolerance_...'s.
    proxy.restore()
