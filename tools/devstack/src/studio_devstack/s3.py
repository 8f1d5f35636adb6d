"""The local S3 stand-in: moto's server with the stack's bucket in it.

moto keeps everything in memory, so uploads are gone when the stack stops; it
also accepts presigned URLs without checking their signature or expiry, so
the services' own token checks are what protects private media.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from moto.server import ThreadedMotoServer


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


def serve(host: str, port: int, location: S3Location) -> int:
    """Run moto until SIGTERM/SIGINT, with the bucket created once it listens."""
    # werkzeug logs every request; the services' own logs say what they asked for.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        created = ensure_bucket(location)
        state = "created" if created else "exists"
        print(
            f"S3 stand-in (moto, in memory) on {location.endpoint_url}, "
            f"bucket {location.bucket!r} {state}",
            flush=True,
        )
        stop.wait()
    finally:
        server.stop()
    return 0
