"""Editor routes: presigned and resumable uploads, and checking what was uploaded."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from studio_common.access import Access, access
from studio_common.auth import EditorUser
from studio_common.db import SessionDep
from studio_common.errors import RATE_LIMITED, problem_response
from studio_media.context import ContextDep
from studio_media.policy import ATTACHABLE, accepted
from studio_media.schemas import (
    AcceptedExtension,
    AcceptedKind,
    AcceptedTypes,
    CompleteIn,
    PartsIn,
    PartsOut,
    PresignIn,
    PresignOut,
    UploadIn,
    UploadOut,
    UploadProgress,
    VerifiedObject,
    VerifyIn,
)
from studio_media.service.uploads import UploadService, VerificationFailed

router = APIRouter(prefix="/api/admin", tags=["media uploads"])
EDITOR = access(Access.editor)
# A failed check is answered, not raised: the request's transaction then
# commits the upload's "rejected" state along with the response.
CHECK_RESPONSES: dict[int | str, dict[str, str]] = {
    422: {"description": "The object failed a check; it was deleted."}
}

UPLOAD_RESPONSES: dict[int | str, dict[str, str]] = {
    413: {"description": "Larger than the limit for the key's folder"},
    **RATE_LIMITED,
}


def _service(session: SessionDep, ctx: ContextDep) -> UploadService:
    return UploadService(session, ctx.storage, ctx.settings)


def _upload_out(upload: object) -> UploadOut:
    return UploadOut.model_validate(upload, from_attributes=True)


@router.post("/presign", response_model=PresignOut, responses=UPLOAD_RESPONSES, **EDITOR)
async def presign(
    data: PresignIn, user: EditorUser, session: SessionDep, ctx: ContextDep
) -> PresignOut:
    """A presigned PUT for one file of the given kind; the answer names its key
    (`<prefix>/<uploadId>/<filename>`). Send the returned `headers` with it: the
    content type, length and `If-None-Match: *` are part of the signature."""
    await ctx.limit("presign", user.subject)
    return await _service(session, ctx).presign(
        user, data.kind, data.filename, data.content_type, data.size, data.attach_to
    )


@router.get("/uploads/accepted-types", response_model=AcceptedTypes, **EDITOR)
async def accepted_types(ctx: ContextDep) -> AcceptedTypes:
    """What may be uploaded, per kind: extensions, their content types and the size cap.
    Clients check files against this list; media enforces the same one."""
    return AcceptedTypes(
        kinds=[
            AcceptedKind(
                kind=kind,
                max_bytes=max_bytes,
                attachable=kind in ATTACHABLE,
                extensions=[
                    AcceptedExtension(extension=ext, content_types=types)
                    for ext, types in extensions.items()
                ],
            )
            for kind, max_bytes, extensions in accepted(ctx.settings)
        ]
    )


@router.post(
    "/uploads",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    responses=UPLOAD_RESPONSES,
    **EDITOR,
)
async def create_upload(
    data: UploadIn, user: EditorUser, session: SessionDep, ctx: ContextDep, response: Response
) -> UploadOut:
    """Start a resumable multipart upload; the answer says how to cut the file into parts."""
    await ctx.limit("presign", user.subject)
    upload = await _service(session, ctx).create(
        user, data.kind, data.filename, data.content_type, data.size, data.attach_to
    )
    response.headers["Location"] = f"/api/admin/uploads/{upload.id}"
    return UploadOut(
        upload_id=upload.id,
        key=upload.key,
        kind=data.kind,
        attached_to=upload.attached_to,
        status=upload.status,
        size=upload.size,
        content_type=upload.content_type,
        part_size=upload.part_size or 0,
        part_count=upload.part_count or 0,
        created_at=upload.created_at,
    )


@router.post(
    "/uploads/verify",
    response_model=VerifiedObject,
    responses={
        **CHECK_RESPONSES,
        404: {"description": "No upload with that id"},
        409: {"description": "The upload is not complete yet"},
    },
    **EDITOR,
)
async def verify_upload(
    data: VerifyIn, user: EditorUser, request: Request, session: SessionDep, ctx: ContextDep
) -> VerifiedObject | JSONResponse:
    """Check the caller's own upload before an episode references it: it exists, its
    size is within the limit and as declared, and its first bytes are the declared
    format. Another editor's upload is 403 (an admin may check anyone's)."""
    service = _service(session, ctx)
    upload = await service.owned(data.upload_id, user, for_update=True, multipart=False)
    try:
        return await service.verify(upload)
    except VerificationFailed as exc:
        return problem_response(exc, request)


@router.get("/uploads/{upload_id}", response_model=UploadProgress, **EDITOR)
async def get_upload(
    upload_id: uuid.UUID, user: EditorUser, session: SessionDep, ctx: ContextDep
) -> UploadProgress:
    """The upload with the parts storage already holds: resume by uploading `missingParts`."""
    service = _service(session, ctx)
    return await service.progress(await service.owned(upload_id, user))


@router.post("/uploads/{upload_id}/parts", response_model=PartsOut, **EDITOR)
async def part_urls(
    upload_id: uuid.UUID, data: PartsIn, user: EditorUser, session: SessionDep, ctx: ContextDep
) -> PartsOut:
    """Presigned PUTs for the given parts, each with its signed Content-Length."""
    service = _service(session, ctx)
    return service.part_urls(await service.owned(upload_id, user), data.part_numbers)


@router.post(
    "/uploads/{upload_id}/complete",
    response_model=VerifiedObject,
    responses=CHECK_RESPONSES,
    **EDITOR,
)
async def complete_upload(
    upload_id: uuid.UUID,
    user: EditorUser,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    data: CompleteIn | None = None,
) -> VerifiedObject | JSONResponse:
    """Assemble the parts (those given, or all storage holds) and verify the object."""
    service = _service(session, ctx)
    upload = await service.owned(upload_id, user, for_update=True)
    try:
        return await service.complete(upload, data.parts if data else None)
    except VerificationFailed as exc:
        return problem_response(exc, request)


@router.delete("/uploads/{upload_id}", status_code=status.HTTP_204_NO_CONTENT, **EDITOR)
async def abort_upload(
    upload_id: uuid.UUID, user: EditorUser, session: SessionDep, ctx: ContextDep
) -> Response:
    """Abort the multipart upload; storage drops the parts uploaded so far."""
    service = _service(session, ctx)
    await service.abort(await service.owned(upload_id, user, for_update=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
