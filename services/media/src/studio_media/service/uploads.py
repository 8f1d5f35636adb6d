"""Upload use cases: presigned PUTs, resumable multipart uploads, verification.

Each runs in the caller's transaction. S3 calls are not transactional: an S3
multipart upload whose row never committed is an orphan the cleanup sweep
aborts, and a rejected object is deleted before the rejection is reported.

An upload belongs to the editor who created it. Its key is made here from its
own id (``uploads/<id>/<file name>``), never taken from the request, and S3 is
told to refuse a write over an existing object (``If-None-Match: *``), so no
one can address, overwrite or, through a failed check, delete another upload's
object. A verified upload is announced as ``media.upload.verified`` through the
outbox; catalog accepts only such sources.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.auth import Principal, Role
from studio_common.errors import Forbidden, NotFound, ProblemError, ValidationFailed
from studio_common.events import UploadVerifiedV1
from studio_common.outbox import enqueue
from studio_media.config import MediaSettings
from studio_media.models import Upload, messaging
from studio_media.policy import (
    ATTACHABLE,
    RULES,
    AssetKind,
    UploadKind,
    check_upload,
    max_bytes_for,
    media_type,
    upload_key,
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


class AttachmentRequired(ValidationFailed):
    slug, title = "attachment-required", "A subtitle upload names the source it belongs to"


class AttachmentNotAllowed(ValidationFailed):
    slug, title = "attachment-not-allowed", "This kind of upload cannot belong to another"


class UnknownAttachment(ProblemError):
    status, slug, title = (
        422,
        "unknown-attachment",
        "The upload to attach to is not a usable source",
    )


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

    async def _attachment(
        self, principal: Principal, kind: UploadKind, attach_to: uuid.UUID | None
    ) -> Upload | None:
        """The source upload a new upload belongs to: the caller's own (an admin may use any)."""
        if attach_to is None:
            if kind is UploadKind.subtitle:
                raise AttachmentRequired("Name the source upload in 'attachTo'.")
            return None
        if kind not in ATTACHABLE:
            raise AttachmentNotAllowed(f"A {kind.value} upload stands alone; omit 'attachTo'.")
        parent = await self.uploads.get(attach_to)
        if parent is None or parent.asset_kind != UploadKind.source:
            raise UnknownAttachment(f"No source upload with id {attach_to}.")
        if parent.created_by != principal.subject and not principal.has_role(Role.admin):
            raise Forbidden("Only the editor who uploaded a source, or an admin, may attach to it.")
        if parent.status in ("rejected", "aborted", "expired"):
            raise UnknownAttachment(
                f"The source upload {attach_to} is {parent.status}.",
                extra={"uploadStatus": parent.status},
            )
        return parent

    async def _new(
        self,
        principal: Principal,
        kind: UploadKind,
        filename: str,
        content_type: str,
        size: int,
        attach_to: uuid.UUID | None,
    ) -> tuple[Upload, str]:
        """A new upload row (not yet added) and its normalised content type."""
        target = check_upload(kind, filename, content_type, size, self.settings)
        parent = await self._attachment(principal, kind, attach_to)
        upload_id = uuid.uuid4()
        upload = Upload(
            id=upload_id,
            key=upload_key(kind, upload_id, target.filename),
            asset_kind=kind.value,
            filename=target.filename,
            attached_to=parent.id if parent else None,
            content_type=target.content_type,
            size=size,
            created_by=principal.subject,
        )
        return upload, target.content_type

    # --- single PUT ---------------------------------------------------------

    async def presign(
        self,
        principal: Principal,
        kind: UploadKind,
        filename: str,
        content_type: str,
        size: int,
        attach_to: uuid.UUID | None = None,
    ) -> PresignOut:
        upload, ctype = await self._new(principal, kind, filename, content_type, size, attach_to)
        expires = self.settings.presign_expires_seconds
        url = self.storage.presign_put(upload.key, ctype, size, expires)
        upload.kind, upload.status = "single", "pending"
        await self.uploads.add(upload)
        return PresignOut(
            upload_id=upload.id,
            url=url,
            key=upload.key,
            expires_in=expires,
            headers={
                "Content-Type": ctype,
                "Content-Length": str(size),
                # Signed: storage refuses the PUT once an object is there.
                "If-None-Match": "*",
            },
        )

    # --- multipart ------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        kind: UploadKind,
        filename: str,
        content_type: str,
        size: int,
        attach_to: uuid.UUID | None = None,
    ) -> Upload:
        upload, ctype = await self._new(principal, kind, filename, content_type, size, attach_to)
        part_size, part_count = plan_parts(size, self.settings.multipart_part_size)
        upload.kind, upload.status = "multipart", "uploading"
        upload.part_size, upload.part_count = part_size, part_count
        upload.s3_upload_id = await self.storage.create_multipart(upload.key, ctype)
        return await self.uploads.add(upload)

    async def owned(
        self,
        upload_id: uuid.UUID,
        principal: Principal,
        *,
        for_update: bool = False,
        multipart: bool = True,
    ) -> Upload:
        """The caller's upload (an admin may touch anyone's)."""
        upload = await self.uploads.get(upload_id, for_update=for_update)
        if upload is None or (multipart and upload.kind != "multipart"):
            raise NotFound(f"No {'multipart ' if multipart else ''}upload with id {upload_id}.")
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
            kind=UploadKind(upload.asset_kind),
            attached_to=upload.attached_to,
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
        return await self.verify_object(upload)

    async def abort(self, upload: Upload) -> None:
        s3_id = self._require_open(upload)
        await self.storage.abort_multipart(upload.key, s3_id)
        await self.uploads.set_status(upload, "aborted")

    # --- verification -------------------------------------------------------

    async def verify(self, upload: Upload) -> VerifiedObject:
        """Check the caller's own upload (see :meth:`owned`).

        A verified upload answers what was found then, unchanged: its object
        cannot be replaced (``If-None-Match``), and checking it again must not
        be able to delete what an episode may already reference."""
        if upload.status == "verified" and upload.format is not None:
            return _verified_out(upload)
        if upload.filename is None or upload.status in ("uploading", "aborted", "expired"):
            raise UploadNotOpen(
                "Only a presigned or completed upload can be checked"
                + ("" if upload.filename else "; upload the file again")
                + ".",
                extra={"uploadStatus": upload.status},
            )
        return await self.verify_object(upload)

    async def verify_object(self, upload: Upload) -> VerifiedObject:
        """Check the upload's stored object; on failure delete it, mark the upload and raise.

        The object is this upload's own (its key carries the upload's id). The
        caller commits the rejection even though this raises: the API returns
        a :class:`VerificationFailed` as a response, not an exception.
        """
        try:
            return await self._check_object(upload)
        except VerificationFailed as exc:
            if not isinstance(exc, UploadMissing):
                await self.storage.delete(upload.key)
            await self.uploads.set_status(upload, "rejected", reason=exc.detail or exc.title)
            raise

    async def _check_object(self, upload: Upload) -> VerifiedObject:
        kind = UploadKind(upload.asset_kind)
        rule = RULES[kind]
        key = upload.key
        ext = key.rsplit(".", 1)[-1].lower()
        allowed = rule.types.get(ext, frozenset())
        info = await self.storage.head(key)
        if info is None:
            raise UploadMissing(f"Nothing is stored under '{key}'; upload it first.")
        stored_type = media_type(info.content_type or "")
        if stored_type not in allowed or stored_type != upload.content_type:
            raise UploadContentTypeMismatch(
                f"The object is stored as '{info.content_type}'; a '.{ext}' file here must be "
                f"{upload.content_type}."
            )
        limit = max_bytes_for(rule.asset, self.settings)
        if info.size > limit:
            raise UploadObjectTooLarge(
                f"The object has {info.size} bytes; the limit is {limit}.",
                extra={"maxBytes": limit, "size": info.size},
            )
        if info.size != upload.size:
            raise UploadSizeMismatch(
                f"The object has {info.size} bytes; {upload.size} were declared.",
                extra={"declaredSize": upload.size, "size": info.size},
            )
        head = await self.storage.read_head(key, SNIFF_BYTES) if info.size else b""
        found = sniff(rule.asset, head)
        if found is None or found not in EXPECTED[ext]:
            what = (
                "a video container (MP4/MOV, Matroska/WebM or MPEG-TS)"
                if rule.asset is AssetKind.source
                else f"a .{ext} file"
            )
            raise UploadContentInvalid(
                f"The first bytes of '{key}' do not look like {what}.", extra={"detected": found}
            )
        await self.uploads.set_status(
            upload, "verified", verified_at=datetime.now(UTC), format=found
        )
        assert upload.filename is not None
        await enqueue(
            self.session,
            messaging,
            UploadVerifiedV1(
                upload_id=upload.id,
                key=key,
                kind=kind.value,
                owner=upload.created_by,
                size=info.size,
                content_type=stored_type,
                format=found,
                filename=upload.filename,
                attached_to=upload.attached_to,
            ),
        )
        return _verified_out(upload)


def _verified_out(upload: Upload) -> VerifiedObject:
    assert upload.format is not None
    return VerifiedObject(
        upload_id=upload.id,
        key=upload.key,
        kind=UploadKind(upload.asset_kind),
        size=upload.size,
        content_type=upload.content_type,
        format=upload.format,
        attached_to=upload.attached_to,
    )
