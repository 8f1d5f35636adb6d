"""From a probed source and the settings to what one ffmpeg run produces. Pure.

Rendition names follow the short side (``720p`` of a portrait 720x1280 source
is 720x1280), so a ladder step is never above the source in either dimension
and a vertical video gets as many pixels as a horizontal one of the same name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from studio_transcoder.config import Rung, TranscoderSettings
from studio_transcoder.media.probe import SourceInfo, SubtitleStream
from studio_transcoder.naming import language_name, unique_names

# H.264 levels: (name, level_idc, max macroblocks/s, max frame size in macroblocks,
# max bitrate in kbit/s for the High profile).
_LEVELS = (
    ("3.0", 30, 40_500, 1_620, 12_500),
    ("3.1", 31, 108_000, 3_600, 17_500),
    ("3.2", 32, 216_000, 5_120, 25_000),
    ("4.0", 40, 245_760, 8_192, 25_000),
    ("4.1", 41, 245_760, 8_192, 62_500),
    ("4.2", 42, 522_240, 8_704, 62_500),
    ("5.0", 50, 589_824, 22_080, 168_750),
    ("5.1", 51, 983_040, 36_864, 300_000),
    ("5.2", 52, 2_073_600, 36_864, 300_000),
)
AAC_CODEC = "mp4a.40.2"
MIN_VIDEO_KBPS = 200


def even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def even_floor(value: float) -> int:
    return max(2, 2 * math.floor(value / 2))


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The source's aspect with its short side at ``short_side``; even, never larger."""
    if width >= height:
        w, h = even(short_side * width / height), even(short_side)
    else:
        w, h = even(short_side), even(short_side * height / width)
    return min(w, even_floor(width)), min(h, even_floor(height))


def h264_level(width: int, height: int, fps: float, maxrate_kbps: int) -> tuple[str, int]:
    frame_mbs = math.ceil(width / 16) * math.ceil(height / 16)
    for name, idc, max_mbps, max_fs, max_br in _LEVELS:
        if frame_mbs <= max_fs and frame_mbs * fps <= max_mbps and maxrate_kbps <= max_br:
            return name, idc
    return _LEVELS[-1][0], _LEVELS[-1][1]


@dataclass(frozen=True, slots=True)
class VideoRendition:
    name: str
    width: int
    height: int
    video_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int
    level: str
    codecs: str  # the video part of CODECS, e.g. avc1.640028


@dataclass(frozen=True, slots=True)
class AudioRendition:
    name: str
    stream_index: int
    language: str
    label: str
    default: bool


@dataclass(frozen=True, slots=True)
class SubtitleFile:
    """A subtitle upload attached to the source by id (listed in the uploaded event)."""

    key: str
    language: str
    extension: str  # srt, ass, ssa or vtt


@dataclass(frozen=True, slots=True)
class SubtitleRendition:
    name: str
    language: str
    label: str
    forced: bool
    stream_index: int | None  # from the source, or
    file: SubtitleFile | None  # from an uploaded file
    keep_ass: bool  # the ASS original is stored next to the WebVTT
    default: bool = False  # the source marks it as the track to show


@dataclass(frozen=True, slots=True)
class ThumbnailPlan:
    poster_at: float
    poster_size: tuple[int, int]
    still_interval: float
    still_size: tuple[int, int]
    sprite_interval: float
    tile_size: tuple[int, int]
    columns: int
    rows: int


@dataclass(frozen=True, slots=True)
class LadderPlan:
    duration: float
    fps: float
    video: tuple[VideoRendition, ...]
    audio: tuple[AudioRendition, ...]
    subtitles: tuple[SubtitleRendition, ...]
    thumbnails: ThumbnailPlan
    ignored: tuple[str, ...]  # streams left out, said in the job log

    @property
    def track_names(self) -> list[str]:
        """Every video and audio rendition: one folder of segments each."""
        return [v.name for v in self.video] + [a.name for a in self.audio]

    @property
    def codecs(self) -> dict[str, str]:
        audio = f",{AAC_CODEC}" if self.audio else ""
        return {v.name: f"{v.codecs}{audio}" for v in self.video}


def _rungs_for(short_side: int, rungs: list[Rung]) -> list[Rung]:
    fitting = [r for r in rungs if r.height <= short_side]
    if fitting:
        return fitting
    # Smaller than every step: one rendition at the source's own size, with the
    # smallest step's bitrate scaled to its pixel count.
    smallest = min(rungs, key=lambda r: r.height)
    height = even_floor(short_side)
    kbps = max(MIN_VIDEO_KBPS, round(smallest.video_kbps * (height / smallest.height) ** 2))
    return [Rung(height, kbps)]


def _video(info: SourceInfo, settings: TranscoderSettings) -> list[VideoRendition]:
    src = info.video
    out = []
    for rung in _rungs_for(min(src.width, src.height), settings.rungs):
        width, height = scaled_size(src.width, src.height, rung.height)
        level, idc = h264_level(width, height, src.fps, rung.maxrate_kbps)
        out.append(
            VideoRendition(
                name=f"{rung.height}p",
                width=width,
                height=height,
                video_kbps=rung.video_kbps,
                maxrate_kbps=rung.maxrate_kbps,
                bufsize_kbps=rung.bufsize_kbps,
                level=level,
                codecs=f"avc1.6400{idc:02x}",
            )
        )
    return out


def _audio(info: SourceInfo) -> tuple[list[AudioRendition], list[str]]:
    # Every language-tagged stream is a rendition (JA original and EN dub); a
    # source without any tag still gets its first stream.
    tagged = [a for a in info.audio if a.tagged]
    chosen = tagged or list(info.audio[:1])
    ignored = [
        f"audio stream #{a.index} ({a.codec}) has no language tag and was left out"
        for a in info.audio
        if a not in chosen
    ]
    if not chosen:
        return [], ignored
    default = next((a for a in chosen if a.original), chosen[0])
    names = unique_names([f"audio-{a.language}" for a in chosen])
    return [
        AudioRendition(
            name=name,
            stream_index=a.index,
            language=a.language,
            label=language_name(a.language, a.title),
            default=a is default,
        )
        for name, a in zip(names, chosen, strict=True)
    ], ignored


def _subtitles(
    streams: tuple[SubtitleStream, ...], files: list[SubtitleFile]
) -> tuple[list[SubtitleRendition], list[str]]:
    text = [s for s in streams if s.is_text]
    ignored = [
        f"subtitle stream #{s.index} ({s.codec}) is a bitmap format and was left out"
        for s in streams
        if not s.is_text
    ]
    names = unique_names([s.language for s in text] + [f.language for f in files])
    out = [
        SubtitleRendition(
            name=name,
            language=s.language,
            label=language_name(s.language, s.title),
            forced=s.forced,
            stream_index=s.index,
            file=None,
            keep_ass=s.codec in ("ass", "ssa"),
            default=s.default,
        )
        for name, s in zip(names, text, strict=False)
    ]
    out += [
        SubtitleRendition(
            name=name,
            language=f.language,
            label=language_name(f.language),
            forced=False,
            stream_index=None,
            file=f,
            keep_ass=f.extension in ("ass", "ssa"),
        )
        for name, f in zip(names[len(text) :], files, strict=True)
    ]
    return out, ignored


def _thumbnails(info: SourceInfo, settings: TranscoderSettings) -> ThumbnailPlan:
    src = info.video
    short = min(src.width, src.height)
    long_side = settings.sprite_thumb_size
    if src.width >= src.height:
        tile = (even(long_side), even(long_side * src.height / src.width))
    else:
        tile = (even(long_side * src.width / src.height), even(long_side))
    last_frame = max(0.0, info.duration - 2 / max(src.fps, 1))
    return ThumbnailPlan(
        poster_at=min(info.duration * settings.poster_position, last_frame),
        poster_size=scaled_size(src.width, src.height, min(720, short)),
        still_interval=settings.still_interval_seconds,
        still_size=scaled_size(src.width, src.height, min(360, short)),
        sprite_interval=settings.sprite_interval_seconds,
        tile_size=tile,
        columns=settings.sprite_columns,
        rows=settings.sprite_rows,
    )


def plan_ladder(
    info: SourceInfo, settings: TranscoderSettings, subtitle_files: list[SubtitleFile] | None = None
) -> LadderPlan:
    audio, ignored_audio = _audio(info)
    subtitles, ignored_subs = _subtitles(info.subtitles, subtitle_files or [])
    return LadderPlan(
        duration=info.duration,
        fps=info.video.fps,
        video=tuple(_video(info, settings)),
        audio=tuple(audio),
        subtitles=tuple(subtitles),
        thumbnails=_thumbnails(info, settings),
        ignored=tuple(ignored_audio + ignored_subs),
    )
