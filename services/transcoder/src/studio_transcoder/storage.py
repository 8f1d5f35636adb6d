"""The bucket, as the worker uses it. boto3 is blocking: every call runs in a thread.

Errors from S3 or the network become :class:`TransientFailure` (the client has
already retried them three times); a missing source stays a distinct answer.
An error that says storage is away (no connection, a timeout, a 5xx) is an
outage, not a failure: it closes the :class:`StorageGate`, and the call waits
for storage to answer again and runs again, for up to the outage tolerance;
past it, :class:`StorageUnavailable`. Every call here is safe to repeat: each
attempt writes keys of its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mimetypes
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from studio_common.storage import s3_client
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import StorageUnavailable, TransientFailure
from studio_transcoder.outage import StorageGate, is_unavailable

T = TypeVar("T")

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".vtt": "text/vtt; charset=utf-8",
    ".ass": "text/x-ssa; charset=utf-8",
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".ttc": "font/collection",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
# Segments and images never change under their name within one attempt;
# playlists that still grow must be refetched.
CACHE_IMMUTABLE = "public, max-age=86400"
CACHE_GROWING = "no-cache"
CACHE_FINAL = "public, max-age=300"


def content_type(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


# botocore waits 60 s for a connection by default: an outage would hold every
# call for minutes before anyone knows. The probe asks once, quickly.
log = logging.getLogger("studio.transcoder.storage")

_TIMEOUTS = Config(connect_timeout=5, read_timeout=60)
_PROBE = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"})


class ObjectStore:
    """The bucket through one boto3 client."""

    def __init__(
        self, settings: TranscoderSettings, client: Any = None, gate: StorageGate | None = None
    ) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.client: Any = client if client is not None else s3_client(settings, config=_TIMEOUTS)
        self.gate = gate

    def gate_for(self) -> StorageGate:
        """A gate that probes this bucket (a cheap HEAD, one try, short timeouts)."""
        probe_client = s3_client(self.settings, config=_PROBE)

        async def probe() -> None:
            await asyncio.to_thread(lambda: probe_client.head_bucket(Bucket=self.bucket))

        self.gate = StorageGate(
            probe,
            probe_min_seconds=min(1.0, self.settings.storage_probe_max_seconds),
            probe_max_seconds=self.settings.storage_probe_max_seconds,
        )
        return self.gate

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        tolerance = self.settings.storage_outage_tolerance_seconds
        while True:
            try:
                return await asyncio.to_thread(fn)
            except ClientError as exc:
                if _missing(exc):
                    raise
                if self.gate is None or not is_unavailable(exc):
                    raise TransientFailure("storage", f"Storage failed to {what}: {exc}") from exc
                error: Exception = exc
            except (BotoCoreError, S3UploadFailedError) as exc:
                if self.gate is None or not is_unavailable(exc):
                    raise TransientFailure("storage", f"Storage failed to {what}: {exc}") from exc
                error = exc
            self.gate.report(error)
            if not await self.gate.wait_up(self.gate.remaining(tolerance)):
                raise StorageUnavailable(
                    f"Storage did not answer for {tolerance:.0f} s (while trying to {what}): "
                    f"{error}"
                ) from error
            # Spread the calls that waited together over a moment.
            await asyncio.sleep(random.uniform(0, 0.5))  # noqa: S311

    def label(self, key: str) -> str:
        """How logs and failure reasons name an object: its key, never the bucket or a URL."""
        return key

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""
        try:
            head = await self._call(
                f"look up {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=key)
            )
        except ClientError:
            return None
        return int(head.get("ContentLength", 0))

    def presigned_get(self, key: str, ttl_seconds: int) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )
        return url

    async def serves_ranges(self, key: str) -> bool:
        """Whether the store answers range requests for the object (ffmpeg seeks with them)."""
        try:
            response = await self._call(
                f"read the start of {key}",
                lambda: self.client.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-0"),
            )
        except StorageUnavailable:
            raise
        except (ClientError, TransientFailure):
            return False
        response["Body"].close()
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return status == 206 and "ContentRange" in response

    async def download(self, key: str, path: Path) -> None:
        await self._call(
            f"download {key}",
            lambda: self.client.download_file(self.bucket, key, str(path)),
        )

    async def upload_file(self, path: Path, key: str, *, cache_control: str) -> int:
        """Uploads a file; returns its size in bytes."""

        def run() -> int:
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type(key), "CacheControl": cache_control},
            )
            return path.stat().st_size

        return await self._call(f"upload {key}", run)

    async def put_text(self, key: str, text: str, *, cache_control: str) -> None:
        body = text.encode()
        await self._call(
            f"upload {key}",
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type(key),
                CacheControl=cache_control,
            ),
        )

    async def list_keys(self, prefix: str) -> list[str]:
        def run() -> list[str]:
            keys: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", [])]
            return keys

        return await self._call(f"list {prefix}", run)

    async def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            await self._call(
                "delete objects",
                functools.partial(
                    self.client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": chunk, "Quiet": True},
                ),
            )

    async def discard(self, prefix: str | None) -> None:
        """Removes what a failed attempt wrote. Best effort: media also retires the
        folder once it hears of the failure or of the next attempt."""
        if not prefix:
            return
        try:
            await self.delete_prefix(prefix)
        except Exception:
            log.warning("could not remove a failed attempt's output", extra={"prefix": prefix})

    async def delete_prefix(self, prefix: str) -> int:
        """Deletes every object under ``prefix``; returns how many there were."""
        keys = await self.list_keys(prefix)
        await self.delete_keys(keys)
        return len(keys)
