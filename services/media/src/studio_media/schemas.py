"""Wire models: camelCase JSON, bounded strings, lists and numbers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from studio_common.schemas import StrictModel
from studio_media.policy import MAX_FILENAME_LENGTH, UploadKind

# Checked in depth by studio_media.policy; here only bounded.
FileName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILENAME_LENGTH * 2)]
ContentType = Annotated[str, StringConstraints(min_length=3, max_length=100)]
Size = Annotated[int, Field(ge=1, le=5 * 1024**4)]
PartNumber = Annotated[int, Field(ge=1, le=10_000)]
ETag = Annotated[str, StringConstraints(min_length=1, max_length=200)]


# Strict booleans and integers for every request body ("size": "1000" is a 422);
# the responses are built from typed values, which strictness leaves as they are.
class Schema(StrictModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid"
    )


class PresignIn(Schema):
    """What is uploaded; the server picks the key (``<prefix>/<uploadId>/<filename>``)."""

    kind: UploadKind
    filename: FileName
    content_type: ContentType
    size: Size
    # The source upload a subtitle belongs to (required for subtitles; optional for art).
    attach_to: uuid.UUID | None = None


class PresignOut(Schema):
    upload_id: uuid.UUID
    url: str
    key: str
    expires_in: int
    # Send exactly these headers with the PUT; they are part of the signature.
    headers: dict[str, str]


class UploadIn(PresignIn):
    pass


class UploadOut(Schema):
    upload_id: uuid.UUID
    key: str
    kind: UploadKind
    attached_to: uuid.UUID | None = None
    status: str
    size: int
    content_type: str
    part_size: int
    part_count: int
    created_at: datetime


class PartsIn(Schema):
    part_numbers: list[PartNumber] = Field(min_length=1, max_length=1000)


class PartUrl(Schema):
    part_number: int
    url: str
    headers: dict[str, str]


class PartsOut(Schema):
    upload_id: uuid.UUID
    expires_in: int
    parts: list[PartUrl]


class UploadedPart(Schema):
    part_number: int
    etag: str
    size: int


class UploadProgress(UploadOut):
    parts: list[UploadedPart]
    missing_parts: list[int]


class CompletedPart(Schema):
    part_number: PartNumber
    etag: ETag


class CompleteIn(Schema):
    # Omitted: the parts S3 holds for the upload are used.
    parts: list[CompletedPart] | None = Field(default=None, max_length=10_000)


class VerifyIn(Schema):
    upload_id: uuid.UUID


class VerifiedObject(Schema):
    upload_id: uuid.UUID
    key: str
    kind: UploadKind
    size: int
    content_type: str
    format: str
    attached_to: uuid.UUID | None = None


class AcceptedExtension(Schema):
    extension: str
    content_types: list[str]


class AcceptedKind(Schema):
    kind: UploadKind
    max_bytes: int
    attachable: bool
    extensions: list[AcceptedExtension]


class AcceptedTypes(Schema):
    """What may be uploaded: the one list clients check files against before sending them."""

    kinds: list[AcceptedKind]


class SubtitleFontOut(Schema):
    """A font attached to the source, for the ASS tracks (``fonts/<sha256>.<ext>``)."""

    url: str
    families: list[str]
    content_type: str
    size: int | None


class SubtitleTrackOut(Schema):
    """One subtitle track: WebVTT always, the ASS original when it was kept."""

    name: str
    language: str
    label: str
    default: bool
    forced: bool
    webvtt: str
    ass: str | None
    # URLs of the fonts (in ``fonts``) that provide the families the script names.
    fonts: list[str]
    # Families the script names that the source did not attach.
    missing_fonts: list[str]


class PlaybackOut(Schema):
    url: str
    expires_at: datetime | None
    # CDN mode: the same policy as cookies, for players that send cookies to the CDN.
    cookies: dict[str, str] | None = None
    # The episode's subtitle tracks and fonts, by URLs of the same signed scheme;
    # empty until the transcode that wrote them is complete.
    subtitles: list[SubtitleTrackOut] = Field(default_factory=list)
    fonts: list[SubtitleFontOut] = Field(default_factory=list)
