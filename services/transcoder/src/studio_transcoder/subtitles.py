"""ASS/SSA tracks as their authors styled them, and the fonts they were made with.

The WebVTT conversion loses every position, style and font; players that can
render ASS (libass, or its WebAssembly build in the demo player) get the
original file and the fonts muxed into the Matroska source. This module is
pure apart from :func:`extract_fonts` (ffprobe and ffmpeg):

- :func:`check_ass` tells a usable ASS script from a malformed one, and lists
  the font families it asks for (the styles' ``Fontname`` and ``\\fn`` overrides);
- :func:`read_font` recognises a TrueType/OpenType font (or collection, WOFF,
  WOFF2) and reads its family names from the ``name`` table;
- :func:`extract_fonts` dumps the source's font attachments once per episode;
- :func:`manifest` is ``subs/subtitles.json``, the episode's subtitle metadata
  that media hands to players with the playback URL.

Nothing here fails a job: a malformed script or a broken font is left out
with a reason for the job log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import posixpath
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio_transcoder.media.probe import input_options
from studio_transcoder.media.process import run_tool

MANIFEST = "subs/subtitles.json"
FONT_FOLDER = "fonts/"
# Attachment MIME types that are fonts (Matroska muxers use all of these).
FONT_MIME_TYPES = {
    "application/x-truetype-font": "ttf",
    "application/x-font-ttf": "ttf",
    "application/x-font": "ttf",
    "application/vnd.ms-opentype": "otf",
    "application/x-font-opentype": "otf",
    "application/font-sfnt": "ttf",
    "font/ttf": "ttf",
    "font/otf": "otf",
    "font/sfnt": "ttf",
    "font/collection": "ttc",
    "font/woff": "woff",
    "font/woff2": "woff2",
}
FONT_EXTENSIONS = ("ttf", "otf", "ttc", "otc", "woff", "woff2")
FONT_CONTENT_TYPES = {
    "ttf": "font/ttf",
    "otf": "font/otf",
    "ttc": "font/collection",
    "woff": "font/woff",
    "woff2": "font/woff2",
}
# More attachments than this is not a subtitle font set; the rest are left out.
MAX_FONTS = 100
MAX_ASS_BYTES = 50 * 1024 * 1024

_FN_OVERRIDE = re.compile(r"\\fn([^\\}]*)")
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


# --- ASS scripts --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssCheck:
    ok: bool
    reason: str = ""
    fonts: tuple[str, ...] = ()  # family names as written, first use first


def _family(name: str) -> str:
    # "@Font" is the vertical-writing variant of Font: the same file.
    return name.strip().lstrip("@").strip()


def check_ass(data: bytes) -> AssCheck:
    """Whether ``data`` is an ASS/SSA script a renderer can use, and the fonts it names.

    Usable means: text, a ``[Script Info]`` section, an ``[Events]`` section
    whose ``Format`` line names ``Text``, and at least one style or event line.
    """
    if len(data) > MAX_ASS_BYTES:
        return AssCheck(False, f"larger than {MAX_ASS_BYTES // (1024 * 1024)} MiB")
    if b"\x00" in data[:4096].replace(b"\xff\xfe", b"").replace(b"\xfe\xff", b""):
        return AssCheck(False, "not a text file")
    text = data.decode("utf-8-sig", errors="replace")
    section = ""
    sections: set[str] = set()
    style_format: list[str] | None = None
    event_format: list[str] | None = None
    fonts: dict[str, None] = {}
    events = 0
    for raw in text.splitlines():
        line = raw.strip()
        match = _SECTION.match(line)
        if match:
            section = match.group(1).strip().lower()
            sections.add(section)
            continue
        if not line or line.startswith(";") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if section in ("v4+ styles", "v4 styles", "v4 styles+"):
            if key == "format":
                style_format = [c.strip().lower() for c in value.split(",")]
            elif key == "style" and style_format and "fontname" in style_format:
                columns = value.split(",", len(style_format) - 1)
                at = style_format.index("fontname")
                if at < len(columns) and _family(columns[at]):
                    fonts.setdefault(_family(columns[at]), None)
        elif section == "events":
            if key == "format":
                event_format = [c.strip().lower() for c in value.split(",")]
            elif key == "dialogue" and event_format:
                events += 1
                for name in _FN_OVERRIDE.findall(value):
                    if _family(name):
                        fonts.setdefault(_family(name), None)
    if "script info" not in sections:
        return AssCheck(False, "no [Script Info] section")
    if "events" not in sections or not event_format or "text" not in event_format:
        return AssCheck(False, "no [Events] section with a Format line naming Text")
    if style_format is None and events == 0:
        return AssCheck(False, "neither styles nor dialogue lines")
    return AssCheck(True, fonts=tuple(fonts))


# --- fonts --------------------------------------------------------------------


class BrokenFont(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class FontInfo:
    kind: str  # ttf, otf, ttc, woff, woff2
    families: tuple[str, ...]  # family, full and typographic family names


def _name_strings(data: bytes, offset: int) -> list[str]:
    """Family (1), full (4) and typographic family (16) names of one sfnt font."""
    if offset + 12 > len(data):
        raise BrokenFont("truncated font header")
    (num_tables,) = struct.unpack_from(">H", data, offset + 4)
    if not 0 < num_tables <= 200 or offset + 12 + 16 * num_tables > len(data):
        raise BrokenFont("bad table directory")
    for i in range(num_tables):
        tag, _, table, length = struct.unpack_from(">4sIII", data, offset + 12 + 16 * i)
        if tag != b"name":
            continue
        if table + length > len(data) or length < 6:
            raise BrokenFont("the name table lies outside the file")
        fmt, count, strings = struct.unpack_from(">HHH", data, table)
        if fmt > 1 or table + 6 + 12 * count > len(data):
            raise BrokenFont("bad name table")
        names: dict[str, None] = {}
        for r in range(count):
            platform, encoding, _, name_id, size, at = struct.unpack_from(
                ">HHHHHH", data, table + 6 + 12 * r
            )
            if name_id not in (1, 4, 16):
                continue
            start = table + strings + at
            raw = data[start : start + size]
            if len(raw) != size:
                raise BrokenFont("a name lies outside the file")
            if platform in (0, 3):
                value = raw.decode("utf-16-be", errors="replace")
            elif platform == 1 and encoding == 0:
                value = raw.decode("mac_roman", errors="replace")
            else:
                continue
            value = value.strip("\x00 ").strip()
            if value:
                names.setdefault(value, None)
        if not names:
            raise BrokenFont("no family name")
        return list(names)
    raise BrokenFont("no name table")


def read_font(data: bytes) -> FontInfo:
    """The font's kind and names; :class:`BrokenFont` when it is not a usable font."""
    magic = data[:4]
    if magic in (b"\x00\x01\x00\x00", b"true"):
        return FontInfo("ttf", tuple(_name_strings(data, 0)))
    if magic == b"OTTO":
        return FontInfo("otf", tuple(_name_strings(data, 0)))
    if magic == b"ttcf":
        if len(data) < 12:
            raise BrokenFont("truncated collection header")
        (count,) = struct.unpack_from(">I", data, 8)
        if not 0 < count <= 256 or len(data) < 12 + 4 * count:
            raise BrokenFont("bad collection header")
        families: dict[str, None] = {}
        for i in range(count):
            (offset,) = struct.unpack_from(">I", data, 12 + 4 * i)
            families.update(dict.fromkeys(_name_strings(data, offset)))
        return FontInfo("ttc", tuple(families))
    # WOFF/WOFF2 tables are compressed: stored as they are, named by the renderer.
    if magic == b"wOFF":
        return FontInfo("woff", ())
    if magic == b"wOF2":
        return FontInfo("woff2", ())
    raise BrokenFont("not a TrueType/OpenType font")


@dataclass(frozen=True, slots=True)
class Attachment:
    index: int
    filename: str
    mimetype: str
    size: int | None  # from the container, when it says


@dataclass(frozen=True, slots=True)
class StoredFont:
    """A font of the episode: ``fonts/<sha256>.<ext>`` in its version folder."""

    path: str
    sha256: str
    kind: str
    families: tuple[str, ...]
    size: int
    local: Path
    filenames: tuple[str, ...] = ()

    @property
    def content_type(self) -> str:
        return FONT_CONTENT_TYPES[self.kind]


@dataclass
class FontSet:
    fonts: list[StoredFont] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def covering(self, families: Iterable[str]) -> tuple[list[StoredFont], list[str]]:
        """The fonts that provide these families (case-insensitive), and those none does."""
        found: list[StoredFont] = []
        missing: list[str] = []
        for family in families:
            wanted = family.casefold()
            match = [f for f in self.fonts if wanted in {n.casefold() for n in f.families}]
            if match:
                found += [f for f in match if f not in found]
            else:
                missing.append(family)
        return found, missing


def font_attachments(probe: dict[str, Any]) -> list[Attachment]:
    """The attachment streams of an ffprobe ``-show_streams`` answer that are fonts."""
    out = []
    for s in probe.get("streams") or []:
        if s.get("codec_type") != "attachment":
            continue
        tags = {str(k).lower(): str(v) for k, v in (s.get("tags") or {}).items()}
        filename = posixpath.basename(tags.get("filename", "").replace("\\", "/"))
        mimetype = tags.get("mimetype", "").lower().split(";")[0].strip()
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if mimetype in FONT_MIME_TYPES or extension in FONT_EXTENSIONS:
            size = s.get("extradata_size")
            out.append(
                Attachment(
                    index=int(s["index"]),
                    filename=filename or f"attachment-{s['index']}",
                    mimetype=mimetype,
                    size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
                )
            )
    return out


def collect_fonts(
    dumped: list[tuple[Attachment, Path]], *, max_bytes: int, max_fonts: int = MAX_FONTS
) -> FontSet:
    """Checks dumped attachments and keeps each distinct font once (by SHA-256)."""
    result = FontSet()
    by_hash: dict[str, StoredFont] = {}
    limit_mib = max_bytes / (1024 * 1024)
    for attachment, path in dumped:
        label = f"font attachment {attachment.filename!r} (stream #{attachment.index})"
        if not path.exists():
            result.notes.append(f"{label} could not be extracted; left out")
            continue
        size = path.stat().st_size
        if size > max_bytes:
            result.notes.append(
                f"{label} is {size / (1024 * 1024):.1f} MiB, over the limit of "
                f"{limit_mib:.1f} MiB (TRANSCODER_FONT_MAX_BYTES); refused"
            )
            continue
        data = path.read_bytes()
        try:
            info = read_font(data)
        except (BrokenFont, struct.error) as exc:
            result.notes.append(f"{label} is not a usable font ({exc}); left out")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in by_hash:
            kept = by_hash[digest]
            by_hash[digest] = StoredFont(
                kept.path,
                kept.sha256,
                kept.kind,
                kept.families,
                kept.size,
                kept.local,
                (*kept.filenames, attachment.filename),
            )
            continue
        if len(by_hash) >= max_fonts:
            result.notes.append(f"{label} is past the first {max_fonts} fonts; left out")
            continue
        extension = "ttc" if info.kind == "ttc" else info.kind
        by_hash[digest] = StoredFont(
            path=f"{FONT_FOLDER}{digest}.{extension}",
            sha256=digest,
            kind=info.kind,
            families=info.families,
            size=size,
            local=path,
            filenames=(attachment.filename,),
        )
    result.fonts = list(by_hash.values())
    return result


async def extract_fonts(
    *,
    ffprobe: str,
    ffmpeg: str,
    source: str,
    folder: Path,
    max_bytes: int,
    redactions: dict[str, str] | None = None,
) -> FontSet:
    """The source's font attachments, dumped into ``folder`` in one ffmpeg run."""
    listing = await run_tool(
        [
            ffprobe,
            "-v",
            "error",
            *input_options(source),
            "-show_streams",
            "-select_streams",
            "t",
            "-of",
            "json",
            source,
        ],
        time_limit=60,
        redactions=redactions,
    )
    if listing.returncode != 0:
        return FontSet(notes=[f"attachments could not be listed: {listing.stderr[-300:]}"])
    try:
        attachments = font_attachments(json.loads(listing.stdout or b"{}"))
    except (ValueError, KeyError) as exc:
        return FontSet(notes=[f"attachments could not be listed: {exc}"])
    if not attachments:
        return FontSet()
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    notes: list[str] = []
    wanted: list[tuple[Attachment, Path]] = []
    for a in attachments:
        if a.size is not None and a.size > max_bytes:
            # Refused before it is read at all.
            notes.append(
                f"font attachment {a.filename!r} (stream #{a.index}) is "
                f"{a.size / (1024 * 1024):.1f} MiB, over the limit of "
                f"{max_bytes / (1024 * 1024):.1f} MiB (TRANSCODER_FONT_MAX_BYTES); refused"
            )
            continue
        wanted.append((a, folder / f"attachment-{a.index}.bin"))
    if wanted:
        argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        for a, path in wanted:
            argv += [f"-dump_attachment:{a.index}", str(path)]
        # ffmpeg dumps attachments while opening the input; the null output of
        # no stream keeps it from decoding anything.
        argv += [*input_options(source), "-i", source, "-t", "0", "-map", "0:v:0?", "-f", "null"]
        argv.append("-")
        await run_tool(argv, time_limit=120, redactions=redactions)
    fonts = collect_fonts(wanted, max_bytes=max_bytes)
    fonts.notes[:0] = notes
    return fonts


# --- the episode's subtitle metadata ------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestTrack:
    name: str
    language: str
    label: str
    default: bool
    forced: bool
    webvtt: str  # subs/<name>.vtt
    playlist: str  # subs/<name>.m3u8
    ass: str | None  # subs/<name>.ass when the original is kept
    fonts: tuple[str, ...] = ()  # families the script names
    font_files: tuple[str, ...] = ()  # fonts/<sha256>.<ext> that provide them
    missing_fonts: tuple[str, ...] = ()  # named but not attached


def manifest(tracks: list[ManifestTrack], fonts: list[StoredFont]) -> str:
    """``subs/subtitles.json``: paths are relative to the episode's version folder."""
    body = {
        "version": 1,
        "tracks": [
            {
                "name": t.name,
                "language": t.language,
                "label": t.label,
                "default": t.default,
                "forced": t.forced,
                "webvtt": t.webvtt,
                "playlist": t.playlist,
                "ass": t.ass,
                "fonts": list(t.fonts),
                "fontFiles": list(t.font_files),
                "missingFonts": list(t.missing_fonts),
            }
            for t in tracks
        ],
        "fonts": [
            {
                "path": f.path,
                "families": list(f.families),
                "contentType": f.content_type,
                "size": f.size,
                "sha256": f.sha256,
            }
            for f in fonts
        ],
    }
    return json.dumps(body, ensure_ascii=False, indent=1) + "\n"
