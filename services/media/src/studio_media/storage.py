"""The S3 calls media makes, as coroutines.

boto3 is synchronous: network calls run in worker threads. Presigning is local
computation and stays on the loop. URLs handed to browsers and players are
signed with the public client (``S3_PUBLIC_ENDPOINT_URL``), calls the service
makes itself go through the internal one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from starlette.concurrency import iterate_in_threadpool

from studio_common.storage import s3_client
from studio_media.config import MediaSettings

CHUNK = 64 * 1024


COPY_CONCURRENCY = 16


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    content_type: str | None


@dataclass(slots=True)
class ObjectStream:
    status: int  # 200 or 206
    length: int
    content_range: str | None
    etag: str | None
    body: Any

    async def chunks(self) -> AsyncIterator[bytes]:
        def read() -> Iterator[bytes]:
            try:
                yield from self.body.iter_chunks(CHUNK)
            finally:
                self.body.close()

        async for chunk in iterate_in_threadpool(read()):
            yield chunk


class MediaStorage:
    def __init__(self, settings: MediaSettings) -> None:
        self.bucket = settings.s3_bucket
        self.client = s3_client(settings)
        self.public = s3_client(settings, public=True)

    # --- presigning (no I/O) ---------------------------------------------

    def presign_put(self, key: str, content_type: str, size: int, expires: int) -> str:
        url: str = self.public.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                # Signed: S3 refuses a body of any other length,
                "ContentLength": size,
                # and any write over an object already stored under the key.
                "IfNoneMatch": "*",
            },
            ExpiresIn=expires,
        )
        return url

    def presign_part(
        self, key: str, upload_id: str, part_number: int, size: int, expires: int
    ) -> str:
        url: str = self.public.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": part_number,
                "ContentLength": size,
            },
            ExpiresIn=expires,
        )
        return url

    def presign_get(self, key: str, expires: int) -> str:
        url: str = self.public.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )
        return url

    def presign_for_edge(self, key: str, method: str, expires: int) -> str:
        """A URL the gateway fetches itself (X-Accel-Redirect): signed for the services'
        endpoint, which is the one the gateway reaches, and for the request's method,
        since S3 signs GET and HEAD differently."""
        operation = "head_object" if method == "HEAD" else "get_object"
        url: str = self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )
        return url

    # --- multipart ---------------------------------------------------------

    async def create_multipart(self, key: str, content_type: str) -> str:
        resp = await asyncio.to_thread(
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type,
        )
        return str(resp["UploadId"])

    async def list_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            parts: list[dict[str, Any]] = []
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                parts.extend(page.get("Parts", []))
            return parts

        return await asyncio.to_thread(run)

    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        await asyncio.to_thread(
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
            # Never replace an object already stored under the key.
            IfNoneMatch="*",
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await asyncio.to_thread(
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )
        except ClientError as exc:
            if not is_not_found(exc):
                raise

    async def open_multipart_uploads(self) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket):
                out.extend(page.get("Uploads", []))
            return out

        return await asyncio.to_thread(run)

    # --- objects -------------------------------------------------------------

    async def bucket_exists(self) -> bool:
        """Whether the bucket answers; False when it is missing or storage is away."""
        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
        except (ClientError, BotoCoreError, OSError):
            return False
        return True

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return ObjectInfo(
            size=int(resp["ContentLength"]),
            content_type=resp.get("ContentType"),
        )

    async def read_head(self, key: str, length: int) -> bytes:
        def run() -> bytes:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}"
            )
            body = resp["Body"]
            try:
                data: bytes = body.read(length)
            finally:
                body.close()
            return data

        return await asyncio.to_thread(run)

    async def read(self, key: str) -> bytes | None:
        def run() -> bytes:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = resp["Body"].read()
            return data

        try:
            return await asyncio.to_thread(run)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    async def stream(self, key: str, byte_range: str | None) -> ObjectStream | None:
        """The object (or one byte range of it); None when it does not exist.

        Raises ``ClientError`` with code ``InvalidRange`` for an unsatisfiable range.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range:
            params["Range"] = byte_range
        try:
            resp = await asyncio.to_thread(self.client.get_object, **params)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        content_range = resp.get("ContentRange")
        return ObjectStream(
            status=206 if content_range else 200,
            length=int(resp["ContentLength"]),
            content_range=content_range,
            etag=resp.get("ETag"),
            body=resp["Body"],
        )

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        def run() -> int:
            deleted = 0
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                    deleted += len(keys)
            return deleted

        return await asyncio.to_thread(run)

    async def copy_prefix(self, source: str, target: str) -> int:
        """Server-side copies of every object under ``source`` to the same names under ``target``."""

        def run() -> list[str]:
            keys: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=source):
                keys += [obj["Key"] for obj in page.get("Contents", [])]
            return keys

        keys = await asyncio.to_thread(run)

        def copy(key: str) -> None:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=target + key.removeprefix(source),
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="COPY",
            )

        # A few at a time: thousands of segments, each one request.
        for start in range(0, len(keys), COPY_CONCURRENCY):
            await asyncio.gather(
                *(asyncio.to_thread(copy, k) for k in keys[start : start + COPY_CONCURRENCY])
            )
        return len(keys)
