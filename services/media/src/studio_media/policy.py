"""What may be uploaded: kinds, file names, content types and size caps.

Pure functions, no I/O. The caller names what it uploads (a kind) and a file
name; the key is the server's: ``<prefix>/<upload id>/<file name>``, made of an
id nobody else holds, so two editors can never address the same object. A file
name is accepted only in its normal form (one segment, safe characters) rather
than quietly rewritten into something else than the client thinks it wrote.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass

from studio_common.errors import PayloadTooLarge, ProblemError
from studio_media.config import MediaSettings

MAX_KEY_LENGTH = 512
# S3's "safe characters" (no URL-encoding surprises, no control characters), one segment.
_NAME_CHARS = re.compile(r"^[A-Za-z0-9!_.*'()-]+$")


class InvalidFileName(ProblemError):
    status, slug, title = 422, "invalid-file-name", "The file name is not allowed"


class ContentTypeNotAllowed(ProblemError):
    status, slug, title = 422, "content-type-not-allowed", "The content type is not allowed here"


class UploadTooLarge(PayloadTooLarge):
    slug, title = "upload-too-large", "The upload is larger than allowed"


class AssetKind(enum.StrEnum):
    source = "source"
    image = "image"
    subtitle = "subtitle"


class UploadKind(enum.StrEnum):
    """What an upload is for; each kind has its own key prefix."""

    source = "source"
    poster = "poster"
    banner = "banner"
    subtitle = "subtitle"


@dataclass(frozen=True, slots=True)
class KindRule:
    prefix: str
    asset: AssetKind
    # extension → content types accepted for it
    types: dict[str, frozenset[str]]


_VIDEO = {
    "mp4": frozenset({"video/mp4"}),
    "mkv": frozenset({"video/x-matroska", "video/matroska"}),
    "mov": frozenset({"video/quicktime"}),
    "webm": frozenset({"video/webm"}),
    "ts": frozenset({"video/mp2t"}),
}
_IMAGE = {
    "jpg": frozenset({"image/jpeg"}),
    "jpeg": frozenset({"image/jpeg"}),
    "png": frozenset({"image/png"}),
    "webp": frozenset({"image/webp"}),
    "avif": frozenset({"image/avif"}),
}
_SUBTITLE = {
    "vtt": frozenset({"text/vtt"}),
    "ass": frozenset({"text/x-ssa", "application/x-ass"}),
    "ssa": frozenset({"text/x-ssa", "application/x-ass"}),
    "srt": frozenset({"application/x-subrip"}),
}

RULES: dict[UploadKind, KindRule] = {
    UploadKind.source: KindRule("uploads", AssetKind.source, _VIDEO),
    UploadKind.poster: KindRule("posters", AssetKind.image, _IMAGE),
    UploadKind.banner: KindRule("banners", AssetKind.image, _IMAGE),
    UploadKind.subtitle: KindRule("subtitles", AssetKind.subtitle, _SUBTITLE),
}
PREFIXES = tuple(f"{r.prefix}/" for r in RULES.values())
MAX_FILENAME_LENGTH = 200
# A subtitle belongs to a source; art may name one too. Sources stand alone.
ATTACHABLE = {UploadKind.subtitle, UploadKind.poster, UploadKind.banner}


@dataclass(frozen=True, slots=True)
class UploadTarget:
    kind: UploadKind
    filename: str
    content_type: str  # normalised: "video/mp4", no parameters
    extension: str


def max_bytes_for(kind: AssetKind, settings: MediaSettings) -> int:
    return {
        AssetKind.source: settings.max_source_bytes,
        AssetKind.image: settings.max_image_bytes,
        AssetKind.subtitle: settings.max_subtitle_bytes,
    }[kind]


def upload_key(kind: UploadKind, upload_id: uuid.UUID, filename: str) -> str:
    """The only way an upload's key is made: from its kind and its own id."""
    return f"{RULES[kind].prefix}/{upload_id}/{filename}"


def check_filename(filename: str) -> str:
    """The file name's lower-case extension; raises :class:`InvalidFileName`."""
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidFileName(f"The file name must be 1 to {MAX_FILENAME_LENGTH} characters long.")
    if not _NAME_CHARS.match(filename):
        raise InvalidFileName(
            "The file name may contain only letters, digits and !_.*'()- (no '/')."
        )
    stem, dot, ext = filename.rpartition(".")
    if not dot or not stem.strip("."):
        raise InvalidFileName("The file name needs a name and an extension.")
    return ext.lower()


def allowed_types(kind: UploadKind, filename: str) -> tuple[KindRule, str, frozenset[str]]:
    """The kind's rule, the extension and its accepted content types; raises for a bad name or extension."""
    rule = RULES[kind]
    ext = check_filename(filename)
    allowed = rule.types.get(ext)
    if allowed is None:
        raise ContentTypeNotAllowed(
            f"'.{ext}' files are not accepted as {kind.value} uploads "
            f"(allowed: {', '.join(sorted(rule.types))}).",
            extra={"allowedExtensions": sorted(rule.types)},
        )
    return rule, ext, allowed


def media_type(content_type: str) -> str:
    """``Video/MP4; codecs=...`` → ``video/mp4``."""
    return content_type.split(";", 1)[0].strip().lower()


def check_upload(
    kind: UploadKind, filename: str, content_type: str, size: int, settings: MediaSettings
) -> UploadTarget:
    """Validate an upload request: file name, extension, content type and size."""
    rule, ext, allowed = allowed_types(kind, filename)
    ctype = media_type(content_type)
    if ctype not in allowed:
        raise ContentTypeNotAllowed(
            f"'{content_type}' does not match a '.{ext}' file (expected {', '.join(sorted(allowed))}).",
            extra={"allowedContentTypes": sorted(allowed)},
        )
    limit = max_bytes_for(rule.asset, settings)
    if size > limit:
        raise UploadTooLarge(
            f"{size} bytes is over the {limit} byte limit for {kind.value} uploads.",
            extra={"maxBytes": limit},
        )
    return UploadTarget(kind=kind, filename=filename, content_type=ctype, extension=ext)


def accepted(settings: MediaSettings) -> list[tuple[UploadKind, int, dict[str, list[str]]]]:
    """Every kind with its size cap and extensions → content types."""
    return [
        (
            kind,
            max_bytes_for(rule.asset, settings),
            {ext: sorted(types) for ext, types in sorted(rule.types.items())},
        )
        for kind, rule in RULES.items()
    ]
