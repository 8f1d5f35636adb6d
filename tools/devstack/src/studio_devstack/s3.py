"""The local S3 stand-in: moto's server (as the tests run it,
`studio_common.testing.moto_s3`) with the stack's bucket in it.

moto keeps everything in memory. So that uploads and HLS outlive a restart of
`make up` (or a crash of this process), `ObjectStore` mirrors the bucket into
`<data dir>/s3` every `SYNC_INTERVAL` seconds and once more on exit, and puts
it back into moto at start: at most the last couple of seconds of writes are
lost to a `kill -9`. moto accepts presigned URLs without checking their
signature or expiry, so the services' own token checks are what protects
private media here.

A store that starts empty while catalog lists transcoded episodes (the
directory was wiped, or the database outlived it) is reported at every start:
their media is gone, and media answers 404 problem+json for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import boto3
from botocore.exceptions import BotoCoreError, ClientError

from studio_common.testing.moto_s3 import MotoS3Server
from studio_devstack.backing import PostgresTarget


@dataclass(frozen=True)
class S3Location:
    endpoint_url: str
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )


def ensure_bucket(location: S3Location) -> bool:
    """Create the bucket if it is missing. True when it was created."""
    client = location.client()
    try:
        client.head_bucket(Bucket=location.bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    kwargs: dict[str, Any] = {"Bucket": location.bucket}
    if location.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": location.region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
        return False
    return True


def wait_for_bucket(location: S3Location, timeout: float) -> bool:
    client = location.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.head_bucket(Bucket=location.bucket)
            return True
        except (ClientError, BotoCoreError):
            time.sleep(0.3)
    return False


SYNC_INTERVAL = 2.0
INDEX_NAME = "index.json"


class ObjectStore:
    """The bucket's objects as files: `objects/<sha256 of the key>` and an index
    of key -> file, ETag, content type and metadata (written last, atomically)."""

    def __init__(self, directory: Path, location: S3Location) -> None:
        self.directory = directory
        self.objects = directory / "objects"
        self.location = location
        self.client = location.client()
        self.index: dict[str, dict[str, Any]] = {}

    @property
    def index_file(self) -> Path:
        return self.directory / INDEX_NAME

    def load(self) -> bool:
        """Read the index; False for a store that was never written (or was wiped)."""
        self.objects.mkdir(parents=True, exist_ok=True)
        try:
            self.index = json.loads(self.index_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.index = {}
            return False
        return True

    def restore(self) -> tuple[int, int]:
        """Put every saved object back into the (empty) bucket: (objects, bytes)."""
        count = size = 0
        for key, entry in list(self.index.items()):
            path = self.objects / entry["file"]
            if not path.is_file():
                del self.index[key]
                continue
            with path.open("rb") as body:
                reply = self.client.put_object(
                    Bucket=self.location.bucket,
                    Key=key,
                    Body=body,
                    ContentType=entry.get("content_type") or "application/octet-stream",
                    Metadata=entry.get("metadata") or {},
                )
            # A multipart object's ETag differs once put back whole.
            entry["etag"] = reply["ETag"]
            count += 1
            size += path.stat().st_size
        self._write_index()
        return count, size

    def sync(self) -> None:
        """Save what changed in the bucket since the last call; forget what is gone."""
        listed: dict[str, str] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.location.bucket)
        for page in pages:
            for item in page.get("Contents", []):
                listed[item["Key"]] = item["ETag"]
        changed = False
        for key, etag in listed.items():
            if self.index.get(key, {}).get("etag") != etag:
                changed |= self._save(key)
        for key in set(self.index) - set(listed):
            (self.objects / self.index.pop(key)["file"]).unlink(missing_ok=True)
            changed = True
        if changed:
            self._write_index()

    def _save(self, key: str) -> bool:
        try:
            reply = self.client.get_object(Bucket=self.location.bucket, Key=key)
        except ClientError:
            return False  # deleted since the listing
        name = hashlib.sha256(key.encode()).hexdigest()
        partial = self.objects / f"{name}.partial"
        with partial.open("wb") as out:
            for chunk in reply["Body"].iter_chunks(1 << 20):
                out.write(chunk)
        partial.replace(self.objects / name)
        self.index[key] = {
            "file": name,
            "etag": reply["ETag"],
            "content_type": reply.get("ContentType"),
            "metadata": reply.get("Metadata") or {},
        }
        return True

    def _write_index(self) -> None:
        tmp = self.index_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.index), encoding="utf-8")
        os.replace(tmp, self.index_file)


async def ready_episodes(database_url: str) -> int | None:
    """Episodes catalog lists as transcoded; None when that cannot be told."""
    target = PostgresTarget.from_url(database_url)
    try:
        conn = await asyncpg.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            database=target.database,
            timeout=5,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM catalog.episodes WHERE transcode_state = 'ready'"
        )
    except asyncpg.PostgresError:  # no catalog schema yet: a first run
        return None
    finally:
        await conn.close()
    return int(count)


def warn_if_wiped(database_url: str | None, store_dir: Path) -> None:
    if not database_url:
        return
    ready = asyncio.run(ready_episodes(database_url))
    if ready:
        print(
            f"S3 stand-in: WARNING: {store_dir} holds no objects, yet catalog lists {ready} "
            "episode(s) as ready: their media is gone (media answers 404 for it). Upload "
            "their sources again, or start from nothing: `make clean` with a private "
            "database, else drop the catalog's episodes.",
            flush=True,
        )


def _sync_forever(store: ObjectStore, stop: threading.Event) -> None:
    failing = False
    while not stop.wait(SYNC_INTERVAL):
        try:
            store.sync()
        except (ClientError, BotoCoreError, OSError) as exc:
            if not failing:  # one line per outage, not one per round
                print(f"S3 stand-in: saving to {store.directory} failed: {exc}", flush=True)
            failing = True
        else:
            failing = False


def serve(
    host: str,
    port: int,
    location: S3Location,
    store_dir: Path | None = None,
    database_url: str | None = None,
) -> int:
    """Run moto until SIGTERM/SIGINT, with the bucket created once it listens and
    its objects kept in `store_dir` (None: in memory only)."""
    # werkzeug logs every request; the services' own logs say what they asked for.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # The tests' stand-in too: ffmpeg's range reads of a source cost it only what they send.
    server = MotoS3Server(host, port)
    server.start()
    saver: threading.Thread | None = None
    store: ObjectStore | None = None
    try:
        created = ensure_bucket(location)
        state = "created" if created else "exists"
        kept = "in memory"
        if store_dir is not None:
            store = ObjectStore(store_dir, location)
            started = time.monotonic()
            count, size = store.restore() if store.load() else (0, 0)
            kept = (
                f"{count} objects ({size / 1e6:.1f} MB) restored from {store_dir} "
                f"in {time.monotonic() - started:.1f} s"
                if count
                else f"saved to {store_dir}, empty"
            )
            if not count:
                warn_if_wiped(database_url, store_dir)
            saver = threading.Thread(target=_sync_forever, args=(store, stop), daemon=True)
            saver.start()
        print(
            f"S3 stand-in (moto) on {location.endpoint_url}, bucket {location.bucket!r} "
            f"{state}; objects {kept}",
            flush=True,
        )
        stop.wait()
    finally:
        if saver is not None and store is not None:
            saver.join()
            store.sync()  # what the last round missed
        server.stop()
    return 0
