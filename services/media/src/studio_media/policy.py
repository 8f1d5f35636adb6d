"""What may be uploaded where: key rules, content types and size caps per prefix.

Pure functions, no I/O. A key is accepted only in its normal form: the caller
gets back exactly the key that will be signed, so ``uploads//a.mp4`` or
``uploads/./a.mp4`` are refused instead of quietly rewritten into a different
object than the one the client thinks it is writing.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from studio_common.errors import PayloadTooLarge, ProblemError
from studio_media.config import MediaSettings

MAX_KEY_LENGTH = 512
# S3's "safe characters" (no URL-encoding surprises, no control characters).
_KEY_CHARS = re.compile(r"^[A-Za-z0-9!_.*'()/-]+$")


class InvalidKey(ProblemError):
    status, slug, title = 422, "invalid-upload-key", "The object key is not allowed"


class ContentTypeNotAllowed(ProblemError):
    status, slug, title = 422, "content-type-not-allowed", "The content type is not allowed here"


class UploadTooLarge(PayloadTooLarge):
    slug, title = "upload-too-large", "The upload is larger than allowed"


class AssetKind(enum.StrEnum):
    source = "source"
    image = "image"
    subtitle = "subtitle"


@dataclass(frozen=True, slots=True)
class PrefixRule:
    kind: AssetKind
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

RULES: dict[str, PrefixRule] = {
    "uploads": PrefixRule(AssetKind.source, _VIDEO),
    "posters": PrefixRule(AssetKind.image, _IMAGE),
    "banners": PrefixRule(AssetKind.image, _IMAGE),
    "subtitles": PrefixRule(AssetKind.subtitle, _SUBTITLE),
}
PREFIXES = tuple(f"{p}/" for p in RULES)


@dataclass(frozen=True, slots=True)
class UploadTarget:
    key: str
    content_type: str  # normalised: "video/mp4", no parameters


def max_bytes_for(kind: AssetKind, settings: MediaSettings) -> int:
    return {
        AssetKind.source: settings.max_source_bytes,
        AssetKind.image: settings.max_image_bytes,
        AssetKind.subtitle: settings.max_subtitle_bytes,
    }[kind]


def check_key(key: str) -> tuple[PrefixRule, str]:
    """The key's prefix rule and lower-case extension; raises :class:`InvalidKey`."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"The key must be 1 to {MAX_KEY_LENGTH} characters long.")
    if key.startswith("/") or "\\" in key:
        raise InvalidKey("The key must be a relative path with '/' separators.")
    if not _KEY_CHARS.match(key):
        raise InvalidKey("The key may contain only letters, digits, '/' and !_.*'()-")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidKey("The key may not contain empty, '.' or '..' segments.")
    rule = RULES.get(parts[0])
    if rule is None or len(parts) < 2:
        raise InvalidKey(f"The key must start with one of {', '.join(PREFIXES)}.")
    name = parts[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        raise InvalidKey("The file name needs an extension.")
    return rule, ext.lower()


def allowed_types(key: str) -> tuple[PrefixRule, str, frozenset[str]]:
    """The key's prefix rule, extension and accepted content types; raises for a bad key or extension."""
    rule, ext = check_key(key)
    allowed = rule.types.get(ext)
    if allowed is None:
        raise ContentTypeNotAllowed(
            f"'.{ext}' files are not accepted under '{key.split('/')[0]}/' "
            f"(allowed: {', '.join(sorted(rule.types))}).",
            extra={"allowedExtensions": sorted(rule.types)},
        )
    return rule, ext, allowed


def media_type(content_type: str) -> str:
    """``Video/MP4; codecs=...`` → ``video/mp4``."""
    return content_type.split(";", 1)[0].strip().lower()


def check_upload(key: str, content_type: str, size: int, settings: MediaSettings) -> UploadTarget:
    """Validate an upload request: key, extension, content type and size."""
    rule, ext, allowed = allowed_types(key)
    ctype = media_type(content_type)
    if ctype not in allowed:
        raise ContentTypeNotAllowed(
            f"'{content_type}' does not match a '.{ext}' file (expected {', '.join(sorted(allowed))}).",
            extra={"allowedContentTypes": sorted(allowed)},
        )
    limit = max_bytes_for(rule.kind, settings)
    if size > limit:
        raise UploadTooLarge(
            f"{size} bytes is over the {limit} byte limit for {rule.kind.value} uploads.",
            extra={"maxBytes": limit},
        )
    return UploadTarget(key=key, content_type=ctype)
