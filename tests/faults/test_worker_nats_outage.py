"""The transcoder worker through a NATS outage longer than nats-py's default budget.

Before, the worker's connection closed for good after 60 reconnects, and its
fetch loop logged ``ConnectionClosedError`` every second and never fetched
again while its liveness (an open port) stayed green.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from studio_common.db import Database
from studio_common.migrations import upgrade
from studio_common.testing.infra import free_port, scratch_database
from studio_common.testing.jetstream import wait_until
from studio_common.testing.s3 import s3_client, s3_with_bucket
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.models import Job
from studio_transcoder.worker import Worker

from .conftest import ROOT, PrivateNats, outage_seconds, publish_uploaded

BUCKET = "faults-transcoder"


@pytest.fixture
async def transcoder_db(pg_admin_url: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_url, "studio_fault") as url:
        await asyncio.to_thread(upgrade, ROOT / "services" / "transcoder", url)
        yield url


@pytest.fixture
def settings(
    transcoder_db: str, private_nats: PrivateNats, s3_endpoint_url: str, tmp_path: Path
) -> TranscoderSettings:
    root = f"wfault{uuid.uuid4().hex[:8]}"
    s3_with_bucket(s3_endpoint_url, BUCKET)
    (tmp_path / "work").mkdir()
    return TranscoderSettings(
        environment="test",
        database_url=transcoder_db,
        database_pool_size=2,
        nats_url=private_nats.url,
        # 60 attempts (nats-py's default budget) end within ~20 s at these waits.
        nats_reconnect_max_seconds=0.3 if outage_seconds(0) < 120 else 10.0,
        event_subject_root=root,
        event_stream=root.upper(),
        s3_endpoint_url=s3_endpoint_url,
        s3_bucket=BUCKET,
        s3_access_key_id="test",
        s3_secret_access_key="test-secret",
        segment_seconds=1.0,
        keyframe_seconds=1.0,
        still_interval_seconds=1.0,
        sprite_interval_seconds=0.5,
        ladder="180:300",
        retry_backoff_seconds=0.2,
        worker_ack_wait_seconds=5.0,
        worker_fetch_timeout_seconds=0.5,
        worker_metrics_port=free_port(),
        worker_liveness_seconds=2.0,
        metrics_refresh_seconds=0.5,
        shutdown_grace_seconds=2.0,
        work_dir=str(tmp_path / "work"),
        log_json=False,
    )


def _source(tmp_path: Path) -> Path:
    path = tmp_path / "source.mp4"
    command = (
        "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x180:rate=24:duration=2"
        " -c:v libx264 -preset ultrafast -pix_fmt yuv420p"
    )
    subprocess.run(
        [*command.split(), str(path)],
        check=True,
        timeout=60,
    )
    return path


async def _submit(settings: TranscoderSettings, source: Path) -> uuid.UUID:
    key = f"uploads/{uuid.uuid4().hex}/source.mp4"
    s3 = s3_client(settings.s3_endpoint_url)
    await asyncio.to_thread(s3.upload_file, str(source), BUCKET, key)
    return await publish_uploaded(settings, key)


async def _wait_ready(database: Database, episode_id: uuid.UUID, within: float) -> None:
    async def ready() -> bool:
        return await _status(database, episode_id) == "ready"

    await wait_until(ready, within=within, interval=0.3)


async def _healthz(port: int) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code


async def _status(database: Database, episode_id: uuid.UUID) -> str | None:
    async with database.transaction() as session:
        job = (
            await session.scalars(
                select(Job)
                .where(Job.episode_id == episode_id)
                .execution_options(populate_existing=True)
            )
        ).first()
    return None if job is None else job.status


async def test_the_worker_fetches_again_after_a_long_nats_outage(
    settings: TranscoderSettings,
    private_nats: PrivateNats,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    source = await asyncio.to_thread(_source, tmp_path)
    database = Database.connect(settings.database_url, pool_size=2)
    worker = Worker(settings)
    await worker.start()
    try:
        port = settings.worker_metrics_port
        assert await _healthz(port) == 200

        # Jobs queued on the stream when NATS goes (the worker takes one at a time).
        queued = [await _submit(settings, source) for _ in range(3)]
        private_nats.stop()
        outage = outage_seconds(25.0)
        cpu_start, wall_start = time.process_time(), time.monotonic()
        while time.monotonic() - wall_start < outage:
            # Waiting for NATS is not a reason to be restarted.
            assert await _healthz(port) == 200
            await asyncio.sleep(1.0)
        # The whole test process (the worker's loop and this one's probes) idles.
        cpu_share = (time.process_time() - cpu_start) / (time.monotonic() - wall_start)
        assert cpu_share < 0.35, f"{cpu_share:.0%} of a core while NATS was away"
        waiting = [e for e in queued if await _status(database, e) != "ready"]
        assert waiting, "no job was left queued behind the outage"
        private_nats.start()
        back = time.monotonic()

        # The jobs queued before the outage, and work published once it is back
        # (held meanwhile in its producers' outboxes), all end ready.
        after = [await _submit(settings, source) for _ in range(2)]
        for episode_id in queued + after:
            await _wait_ready(database, episode_id, within=90)
        # Everything flows soon after NATS returns: five 2-second encodes and
        # the redelivery of the job whose ack the outage lost.
        assert time.monotonic() - back < 75
        assert await _healthz(port) == 200
        async with httpx.AsyncClient(timeout=5) as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'studio_nats_connected{service="transcoder-worker"} 1.0' in metrics
    finally:
        await worker.stop(grace=0)
        await database.dispose()

    text = caplog.text
    assert "ConnectionClosedError" not in text
    assert text.count("NATS disconnected") == 1, text[-3000:]
    assert text.count("NATS reconnected") == 1, text[-3000:]
    assert "fetching from JetStream failed" not in text
    assert "Traceback" not in text, text[-3000:]


async def test_the_worker_liveness_fails_when_its_event_loop_is_stuck(
    settings: TranscoderSettings,
) -> None:
    worker = Worker(settings)
    await worker.start()
    try:
        port = settings.worker_metrics_port
        assert await _healthz(port) == 200
        seen: list[int] = []

        def probe_while_stuck() -> None:
            time.sleep(settings.worker_liveness_seconds + 1.0)
            seen.append(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code)

        prober = threading.Thread(target=probe_while_stuck)
        prober.start()
        # Blocks the event loop, as a handler that never yields would.
        time.sleep(settings.worker_liveness_seconds + 2.0)  # noqa: ASYNC251
        prober.join()
        assert seen == [503]
        await asyncio.sleep(1.5)
        assert await _healthz(port) == 200
    finally:
        await worker.stop(grace=0)


def _start_worker_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m studio_transcoder worker``, as the stack runs it."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "studio_transcoder", "worker"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_sigterm_during_a_nats_outage_stops_the_worker(
    settings: TranscoderSettings, private_nats: PrivateNats, tmp_path: Path
) -> None:
    env: dict[str, str] = {
        f"TRANSCODER_{k.upper()}": str(v)
        for k, v in settings.model_dump(
            include={
                "environment",
                "database_url",
                "nats_url",
                "nats_reconnect_max_seconds",
                "event_subject_root",
                "event_stream",
                "s3_endpoint_url",
                "s3_bucket",
                "s3_access_key_id",
                "s3_secret_access_key",
                "worker_metrics_port",
                "work_dir",
                "log_json",
                "shutdown_grace_seconds",
            }
        ).items()
    }
    log = tmp_path / "worker.log"
    proc = _start_worker_process(env, log)
    try:

        async def started() -> bool:
            # The probe port answers before the worker connects (it takes no
            # work before it can report); wait for the worker itself.
            try:
                healthy = await _healthz(settings.worker_metrics_port) == 200
            except httpx.HTTPError:
                return False
            return healthy and "transcoder worker started" in log.read_text()

        await wait_until(started, within=30, interval=0.3)
        private_nats.stop()
        await asyncio.sleep(outage_seconds(15.0) if outage_seconds(0) < 120 else 150)
        start = time.monotonic()
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker outlived SIGTERM by 10 s: {log.read_text()[-3000:]}")
        assert time.monotonic() - start < 10
        assert proc.returncode == 0, log.read_text()[-3000:]
        assert "ConnectionClosedError" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
