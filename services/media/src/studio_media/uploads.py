"""Upload use cases: presigned PUTs, resumable multipart uploads, verification.

Each runs in the caller's transaction. S3 calls are not transactional: an S3
multipart upload whose row never committed is an orphan the cleanup sweep
aborts, and a rejected object is deleted before the rejection is reported.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.auth import Principal, Role
from studio_common.errors import Forbidden, NotFound, ProblemError, ValidationFailed
from studio_media.config import MediaSettings
from studio_media.models import Upload
from studio_media.policy import (
    AssetKind,
    allowed_types,
    check_upload,
    max_bytes_for,
    media_type,
)
from studio_media.repository import UploadRepository
from studio_media.schemas import (
    CompletedPart,
    PartsOut,
    PartUrl,
    PresignOut,
    UploadedPart,
    UploadProgress,
    VerifiedObject,
)
from studio_media.sniff import EXPECTED, SNIFF_BYTES, sniff
from studio_media.storage import MediaStorage

MiB = 1024**2
S3_MAX_PARTS = 10_000


class UploadNotOpen(ProblemError):
    status, slug, title = 409, "upload-not-open", "The upload is no longer open"


class UploadIncomplete(ProblemError):
    status, slug, title = 409, "upload-incomplete", "Parts of the upload are missing"


class UploadPartsMismatch(ProblemError):
    status, slug, title = 409, "upload-parts-mismatch", "The parts differ from what storage holds"


class InvalidPartNumber(ValidationFailed):
    slug, title = "invalid-part-number", "The part number is outside the upload"


class VerificationFailed(ProblemError):
    """The uploaded object failed a check; it was deleted and the upload rejected."""

    status = 422


class UploadMissing(VerificationFailed):
    slug, title = "upload-missing", "The uploaded object does not exist"


class UploadSizeMismatch(VerificationFailed):
    slug, title = "upload-size-mismatch", "The uploaded object has another size than declared"


class UploadContentInvalid(VerificationFailed):
    slug, title = "upload-content-invalid", "The uploaded bytes are not the declared format"


class UploadContentTypeMismatch(VerificationFailed):
    slug, title = "upload-content-type-mismatch", "The object is stored with another content type"


class UploadObjectTooLarge(VerificationFailed):
    slug, title = "upload-object-too-large", "The uploaded object is larger than allowed"


def plan_parts(size: int, preferred: int) -> tuple[int, int]:
    """(part size, part count): the preferred size unless 10 000 parts would not hold it."""
    part_size = max(preferred, math.ceil(math.ceil(size / S3_MAX_PARTS) / MiB) * MiB)
    return part_size, max(1, math.ceil(size / part_size))


def part_length(upload: Upload, number: int) -> int:
    assert upload.part_size is not None
    assert upload.part_count is not None
    if number < upload.part_count:
        return upload.part_size
    return upload.size - upload.part_size * (upload.part_count - 1)


def _etag(value: str) -> str:
    return value.strip().strip('"')


@dataclass
class UploadService:
    session: AsyncSession
    storage: MediaStorage
    settings: MediaSettings

    @property
    def uploads(self) -> UploadRepository:
        return UploadRepository(self.session)

    # --- single PUT ---------------------------------------------------------

    async def presign(
        self, principal: Principal, key: str, content_type: str, size: int
    ) -> PresignOut:
        target = check_upload(key, content_type, size, self.settings)
        expires = self.settings.presign_expires_seconds
        url = self.storage.presign_put(target.key, target.content_type, size, expires)
        await self.uploads.add(
            Upload(
                key=target.key,
                kind="single",
                content_type=target.content_type,
                size=size,
                status="pending",
                created_by=principal.subject,
            )
        )
        return PresignOut(
            url=url,
            key=target.key,
            expires_in=expires,
            headers={"Content-Type": target.content_type, "Content-Length": str(size)},
        )

    # --- multipart ------------------------------------------------------------

    async def create(self, principal: Principal, key: str, content_type: str, size: int) -> Upload:
        target = check_upload(key, content_type, size, self.settings)
        part_size, part_count = plan_parts(size, self.settings.multipart_part_size)
        s3_upload_id = await self.storage.create_multipart(target.key, target.content_type)
        return await self.uploads.add(
            Upload(
                key=target.key,
                kind="multipart",
                s3_upload_id=s3_upload_id,
                content_type=target.content_type,
                size=size,
                part_size=part_size,
                part_count=part_count,
                status="uploading",
                created_by=principal.subject,
            )
        )

    async def owned(
        self, upload_id: uuid.UUID, principal: Principal, *, for_update: bool = False
    ) -> Upload:
        upload = await self.uploads.get(upload_id, for_update=for_update)
        if upload is None or upload.kind != "multipart":
            raise NotFound(f"No multipart upload with id {upload_id}.")
        if upload.created_by != principal.subject and not principal.has_role(Role.admin):
            raise Forbidden("Only the editor who started an upload, or an admin, may touch it.")
        return upload

    @staticmethod
    def _require_open(upload: Upload) -> str:
        if upload.status != "uploading" or upload.s3_upload_id is None:
            raise UploadNotOpen(
                f"The upload is {upload.status}.", extra={"uploadStatus": upload.status}
            )
        return upload.s3_upload_id

    def part_urls(self, upload: Upload, numbers: list[int]) -> PartsOut:
        s3_id = self._require_open(upload)
        assert upload.part_count is not None
        outside = sorted(n for n in set(numbers) if n > upload.part_count)
        if outside:
            raise InvalidPartNumber(
                f"The upload has {upload.part_count} parts; {outside} are outside it."
            )
        expires = self.settings.presign_expires_seconds
        parts = []
        for n in sorted(set(numbers)):
            length = part_length(upload, n)
            url = self.storage.presign_part(upload.key, s3_id, n, length, expires)
            parts.append(PartUrl(part_number=n, url=url, headers={"Content-Length": str(length)}))
        return PartsOut(upload_id=upload.id, expires_in=expires, parts=parts)

    async def _stored_parts(self, upload: Upload) -> dict[int, UploadedPart]:
        s3_id = self._require_open(upload)
        return {
            int(p["PartNumber"]): UploadedPart(
                part_number=int(p["PartNumber"]), etag=_etag(p["ETag"]), size=int(p["Size"])
            )
            for p in await self.storage.list_parts(upload.key, s3_id)
        }

    async def progress(self, upload: Upload) -> UploadProgress:
        assert upload.part_count is not None
        assert upload.part_size is not None
        parts: dict[int, UploadedPart] = {}
        missing: list[int] = []
        if upload.status == "uploading":
            parts = await self._stored_parts(upload)
            missing = [n for n in range(1, upload.part_count + 1) if n not in parts]
        return UploadProgress(
            upload_id=upload.id,
            key=upload.key,
            status=upload.status,
            size=upload.size,
            content_type=upload.content_type,
            part_size=upload.part_size,
            part_count=upload.part_count,
            created_at=upload.created_at,
            parts=[parts[n] for n in sorted(parts)],
            missing_parts=missing,
        )

    async def complete(self, upload: Upload, claimed: list[CompletedPart] | None) -> VerifiedObject:
        s3_id = self._require_open(upload)
        assert upload.part_count is not None
        stored = await self._stored_parts(upload)
        missing = [n for n in range(1, upload.part_count + 1) if n not in stored]
        if missing:
            raise UploadIncomplete(
                f"{len(missing)} of {upload.part_count} parts are not uploaded yet.",
                extra={"missingParts": missing},
            )
        if claimed is not None:
            given = {p.part_number: _etag(p.etag) for p in claimed}
            if given != {n: p.etag for n, p in stored.items()}:
                raise UploadPartsMismatch(
                    "The part list does not match the parts in storage; "
                    "omit it to complete with what storage holds."
                )
        wrong = [n for n, p in stored.items() if p.size != part_length(upload, n)]
        if wrong:
            raise UploadPartsMismatch(
                f"Parts {wrong} have another size than the upload's plan.",
                extra={"wrongSizeParts": wrong},
            )
        await self.storage.complete_multipart(
            upload.key, s3_id, [(n, stored[n].etag) for n in sorted(stored)]
        )
        await self.uploads.set_status(upload, "completed", completed_at=datetime.now(UTC))
        return await self.verify_object(upload.key, upload)

    async def abort(self, upload: Upload) -> None:
        s3_id = self._require_open(upload)
        await self.storage.abort_multipart(upload.key, s3_id)
        await self.uploads.set_status(upload, "aborted")

    # --- verification -------------------------------------------------------

    async def verify(self, key: str) -> VerifiedObject:
        allowed_types(key)  # a bad key or extension is the request's fault, not the object's
        return await self.verify_object(key, await self.uploads.latest_for_key(key))

    async def verify_object(self, key: str, upload: Upload | None) -> VerifiedObject:
        """Check the stored object; on failure delete it, mark the upload and raise.

        The caller commits the rejection even though this raises: the API
        returns a :class:`VerificationFailed` as a response, not an exception.
        """
        try:
            return await self._check_object(key, upload)
        except VerificationFailed as exc:
            if not isinstance(exc, UploadMissing):
                await self.storage.delete(key)
            if upload is not None:
                await self.uploads.set_status(upload, "rejected", reason=exc.detail or exc.title)
            raise

    async def _check_object(self, key: str, upload: Upload | None) -> VerifiedObject:
        rule, ext, allowed = allowed_types(key)
        info = await self.storage.head(key)
        if info is None:
            raise UploadMissing(f"Nothing is stored under '{key}'; upload it first.")
        stored_type = media_type(info.content_type or "")
        if stored_type not in allowed or (
            upload is not None and stored_type != upload.content_type
        ):
            raise UploadContentTypeMismatch(
                f"The object is stored as '{info.content_type}'; a '.{ext}' file here must be "
                f"{upload.content_type if upload else ' or '.join(sorted(allowed))}."
            )
        limit = max_bytes_for(rule.kind, self.settings)
        if info.size > limit:
            raise UploadObjectTooLarge(
                f"The object has {info.size} bytes; the limit is {limit}.",
                extra={"maxBytes": limit, "size": info.size},
            )
        if upload is not None and info.size != upload.size:
            raise UploadSizeMismatch(
                f"The object has {info.size} bytes; {upload.size} were declared.",
                extra={"declaredSize": upload.size, "size": info.size},
            )
        head = await self.storage.read_head(key, SNIFF_BYTES) if info.size else b""
        found = sniff(rule.kind, head)
        if found is None or found not in EXPECTED[ext]:
            what = (
                "a video container (MP4/MOV, Matroska/WebM or MPEG-TS)"
                if rule.kind is AssetKind.source
                else f"a .{ext} file"
            )
            raise UploadContentInvalid(
                f"The first bytes of '{key}' do not look like {what}.", extra={"detected": found}
            )
        if upload is not None:
            await self.uploads.set_status(upload, "verified", verified_at=datetime.now(UTC))
        return VerifiedObject(
            key=key,
            size=info.size,
            content_type=stored_type,
            format=found,
            upload_id=upload.id if upload else None,
        )
