"""The local S3 stand-in keeps its objects in the data dir: they survive a
clean stop and a kill -9, deletions stick, and a wiped store is reported when
catalog still lists ready media."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest

from studio_devstack.backing import tcp_reachable
from studio_devstack.s3 import SYNC_INTERVAL

ROOT = Path(__file__).resolve().parents[3]
BUCKET = "studio-anime"
STUDIO_DEV = [sys.executable, "-m", "studio_devstack"]


def client(port: int) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="devstack",
        aws_secret_access_key="devstack-not-a-secret",
    )


class StandIn:
    def __init__(self, port: int, store: Path, log: Path, database_url: str) -> None:
        self.port, self.store, self.log, self.database_url = port, store, log, database_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
        env["STUDIO_DATABASE_URL"] = self.database_url
        started = time.monotonic()
        before = self._starts()
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [*STUDIO_DEV, "s3", "--port", str(self.port), "--store", str(self.store)],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while self._starts() == before:
            assert time.monotonic() < deadline, self.log.read_text()
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        return time.monotonic() - started

    def _starts(self) -> int:
        return self.log.read_text().count("S3 stand-in (moto) on") if self.log.exists() else 0

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        assert not tcp_reachable("127.0.0.1", self.port)


@pytest.fixture
def stand_in(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[StandIn]:
    # Nothing answers there: the wiped-store check is skipped quietly.
    s = StandIn(
        free_port(),
        tmp_path / "s3",
        tmp_path / "s3.log",
        f"postgresql://postgres@127.0.0.1:{free_port()}/none",
    )
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()


def test_objects_outlive_a_crash_and_a_restart(stand_in: StandIn) -> None:
    stand_in.start()
    s3 = client(stand_in.port)
    s3.put_object(
        Bucket=BUCKET,
        Key="hls/e1/master.m3u8",
        Body=b"#EXTM3U\n",
        ContentType="application/vnd.apple.mpegurl",
        Metadata={"attempt": "1"},
    )
    # A multipart upload, as the CLI sends sources.
    part = os.urandom(5 * 1024 * 1024)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="uploads/e1/source.mp4")
    etags = [
        s3.upload_part(
            Bucket=BUCKET,
            Key="uploads/e1/source.mp4",
            UploadId=upload["UploadId"],
            PartNumber=n,
            Body=part,
        )["ETag"]
        for n in (1, 2)
    ]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="uploads/e1/source.mp4",
        UploadId=upload["UploadId"],
        MultipartUpload={
            "Parts": [{"ETag": e, "PartNumber": n} for n, e in zip((1, 2), etags, strict=True)]
        },
    )
    time.sleep(SYNC_INTERVAL * 2)
    stand_in.stop(signal.SIGKILL)  # a crash: only the periodic save counts

    took = stand_in.start()
    master = s3.get_object(Bucket=BUCKET, Key="hls/e1/master.m3u8")
    assert master["Body"].read() == b"#EXTM3U\n"
    assert master["ContentType"] == "application/vnd.apple.mpegurl"
    assert master["Metadata"] == {"attempt": "1"}
    source = s3.get_object(Bucket=BUCKET, Key="uploads/e1/source.mp4")["Body"].read()
    assert source == part + part
    assert "2 objects (10.5 MB) restored" in stand_in.log.read_text()
    assert took < 30

    s3.delete_object(Bucket=BUCKET, Key="hls/e1/master.m3u8")
    stand_in.stop(signal.SIGTERM)  # a clean stop saves what the last round missed
    stand_in.start()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == ["uploads/e1/source.mp4"]


async def _catalog_with_ready_episode(pg_admin_url: str) -> str:
    name = f"studio_devstack_s3_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(url)
    await conn.execute(
        "CREATE SCHEMA catalog; CREATE TABLE catalog.episodes (transcode_state text);"
        "INSERT INTO catalog.episodes VALUES ('ready'), ('pending')"
    )
    await conn.close()
    return name


def test_a_wiped_store_with_ready_media_in_catalog_is_reported(
    stand_in: StandIn, pg_admin_url: str
) -> None:
    name = asyncio.run(_catalog_with_ready_episode(pg_admin_url))
    try:
        stand_in.database_url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
        stand_in.start()
        assert (
            "catalog lists 1 episode(s) as ready: their media is gone" in stand_in.log.read_text()
        )
        s3 = client(stand_in.port)
        s3.put_object(Bucket=BUCKET, Key="hls/other/master.m3u8", Body=b"#EXTM3U\n")
        stand_in.stop(signal.SIGTERM)
        stand_in.start()  # a store with objects: nothing to say
        assert stand_in.log.read_text().count("their media is gone") == 1
    finally:

        async def drop() -> None:
            admin = await asyncpg.connect(pg_admin_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()

        asyncio.run(drop())
