"""Recognise a file's format from its first bytes.

A cheap first gate before an upload may be referenced; ffprobe in the
transcoder has the final word on sources.
"""

from __future__ import annotations

from studio_media.policy import AssetKind

SNIFF_BYTES = 4096
TS_PACKET = 188
# ISO BMFF brands of still images (AVIF, HEIF), not video.
_IMAGE_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")


def video_container(head: bytes) -> str | None:
    """``mp4`` (ISO BMFF, MP4 and MOV), ``matroska`` (MKV and WebM), ``mpegts``, or None."""
    if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
        return None
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"free", b"mdat", b"wide", b"skip"):
        # ISO BMFF: a box size then its type. ftyp comes first in MP4; old
        # QuickTime files may start with moov/mdat/wide instead.
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    # MPEG-TS: the sync byte opens every 188-byte packet; two or three in a row
    # rule out a text file that happens to start with "G".
    packets = min(3, len(head) // TS_PACKET)
    if packets >= 2 and all(head[i * TS_PACKET] == 0x47 for i in range(packets)):
        return "mpegts"
    return None


def image_format(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    return None


def subtitle_format(head: bytes) -> str | None:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n\t ")
    if text.startswith(b"WEBVTT"):
        return "vtt"
    if text.startswith(b"[Script Info]"):
        return "ass"
    first = text.split(b"\n", 1)[0].strip()
    if first.isdigit() and b"-->" in text[:200]:
        return "srt"
    return None


def sniff(kind: AssetKind, head: bytes) -> str | None:
    if kind is AssetKind.source:
        return video_container(head)
    if kind is AssetKind.image:
        return image_format(head)
    return subtitle_format(head)


# Which sniffed formats a declared extension may turn out to be.
EXPECTED: dict[str, frozenset[str]] = {
    "mp4": frozenset({"mp4"}),
    "mov": frozenset({"mp4"}),
    "mkv": frozenset({"matroska"}),
    "webm": frozenset({"matroska"}),
    "ts": frozenset({"mpegts"}),
    "jpg": frozenset({"jpeg"}),
    "jpeg": frozenset({"jpeg"}),
    "png": frozenset({"png"}),
    "webp": frozenset({"webp"}),
    "avif": frozenset({"avif"}),
    "vtt": frozenset({"vtt"}),
    "ass": frozenset({"ass"}),
    "ssa": frozenset({"ass"}),
    "srt": frozenset({"srt"}),
}
