"""The ffmpeg command lines. Pure: a plan in, argv out.

One process decodes the source once. ``split`` feeds every ladder rung and the
three thumbnail outputs (poster, stills, trickplay sprite). Each rendition (a
video rung, an audio language) is an output of its own, cut into MPEG-TS
segments by the segment muxer at the times of the segment grid
(:func:`segment_boundaries`), which also lists each segment once it is
complete. Keyframes are forced on the keyframe interval in time, not frames,
so every rendition cuts its segments at the same instants whatever the
source's frame rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from studio_transcoder.config import TranscoderSettings
from studio_transcoder.media.ladder import LadderPlan, SubtitleRendition
from studio_transcoder.media.probe import input_options

SEGMENT_PATTERN = "seg_%05d.ts"
PLAYLIST_NAME = "index.m3u8"
POSTER_NAME = "poster.jpg"
STILL_PATTERN = "still_%04d.jpg"
SPRITE_PATTERN = "sprite_%03d.jpg"
TILE_PATTERN = "tile_%05d.jpg"
PROGRESS_ARGS = ["-progress", "pipe:1", "-stats_period", "1", "-nostats"]
# Every output's timestamps are shifted by this much (on top of the MPEG-TS
# muxer's own 1.4 s). A chunk's encoder starts mid-episode, where no B-frame
# reordering or AAC priming makes a timestamp negative, so the muxer shifts
# nothing; a one-pass encode starting at 0 would be shifted by that delay
# (it depends on the encoder and the frame rate). Starting everything this far
# from zero keeps every output unshifted, so a chunk's timestamps are exactly
# the one-pass ones: offset + its start on the source timeline.
TS_OFFSET_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class OutputLayout:
    """Where one attempt writes, inside its own temp folder."""

    root: Path

    @property
    def hls(self) -> Path:
        return self.root / "hls"

    @property
    def thumbs(self) -> Path:
        return self.root / "thumbs"

    @property
    def tiles(self) -> Path:
        return self.root / "tiles"

    @property
    def subs(self) -> Path:
        return self.root / "subs"

    def rendition(self, name: str) -> Path:
        return self.hls / name

    def create(self, renditions: Iterable[str] = ()) -> None:
        """The attempt's folders, and one per rendition (ffmpeg makes none)."""
        for path in (self.hls, self.thumbs, self.tiles, self.subs):
            path.mkdir(parents=True, exist_ok=True)
        for name in renditions:
            self.rendition(name).mkdir(parents=True, exist_ok=True)


# A grid point closer than this to the end of the source starts no segment
# (no frame lies in it).
_END_EPSILON = 1e-3


def segment_boundaries(duration: float, settings: TranscoderSettings) -> list[float]:
    """Where every segment starts, then the end: ``[0, b1, ..., duration]``.

    Segments are ``segment_seconds`` long, except that with ``short_start`` the
    first ``segment_seconds`` are cut on every keyframe (2 s segments by
    default): the first playlist then waits for one keyframe interval of every
    rendition instead of a whole segment. Every boundary is a keyframe
    (keyframes are forced on the keyframe interval, a divisor of the segment
    length), and the last segment ends with the source."""
    if duration <= 0:
        return [0.0]
    step, key = settings.segment_seconds, settings.keyframe_seconds
    starts: list[float] = []
    if settings.short_start:
        count = round(step / key)
        starts += [round(n * key, 6) for n in range(count)]
    first = step if starts else 0.0
    n = 0
    while (point := round(first + n * step, 6)) < duration - _END_EPSILON:
        starts.append(point)
        n += 1
    starts = [b for b in starts if b < duration - _END_EPSILON] or [0.0]
    return [*starts, duration]


def cut_times(
    boundaries: Sequence[float], start: float, end: float, ts_offset: float
) -> list[float]:
    """The output timestamps at which an output covering ``[start, end)`` of the
    source cuts a new segment: the grid's boundaries strictly inside it."""
    return [
        round(ts_offset + b, 6) for b in boundaries if start + _END_EPSILON < b < end - _END_EPSILON
    ]


def fmt_seconds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def video_filters(plan: LadderPlan) -> list[str]:
    """``[in_v{i}]`` → ``[v{i}]``: each rung scaled."""
    # format=yuv420p: 10-bit and 4:2:2 sources become 8-bit 4:2:0 H.264 that every player decodes.
    return [
        f"[in_v{i}]scale=w={r.width}:h={r.height}:flags=bicubic,setsar=1,format=yuv420p[v{i}]"
        for i, r in enumerate(plan.video)
    ]


def filter_graph(plan: LadderPlan, video_index: int) -> str:
    branches = [f"v{i}" for i in range(len(plan.video))] + ["poster", "stills", "sprite"]
    parts = [f"[0:{video_index}]split={len(branches)}" + "".join(f"[in_{b}]" for b in branches)]
    parts += video_filters(plan)
    parts += thumbnail_filters(plan)
    return ";".join(parts)


def thumbnail_filters(plan: LadderPlan) -> list[str]:
    """``[in_poster]``, ``[in_stills]``, ``[in_sprite]`` → ``[poster]``, ``[stills]``, ``[sprite]``."""
    thumbs = plan.thumbnails
    parts = []
    pw, ph = thumbs.poster_size
    at = fmt_seconds(thumbs.poster_at)
    # Every output must get a frame early: ffmpeg writes no -progress report
    # until each output file has started. So the poster output takes the first
    # frame and then the one at poster_at, which overwrites it (-update 1).
    parts.append(
        f"[in_poster]select='eq(n,0)+lt(prev_selected_t,{at})*gte(t,{at})',"
        f"scale=w={pw}:h={ph},setsar=1[poster]"
    )
    sw, sh = thumbs.still_size
    parts.append(
        f"[in_stills]fps=fps=1/{fmt_seconds(thumbs.still_interval)},scale=w={sw}:h={sh},setsar=1[stills]"
    )
    # Trickplay tiles come out one by one (a tile filter here would hold the
    # output back for columns x rows intervals); sprite_command puts them on sheets.
    tw, th = thumbs.tile_size
    parts.append(
        f"[in_sprite]fps=fps=1/{fmt_seconds(thumbs.sprite_interval)},scale=w={tw}:h={th},setsar=1[sprite]"
    )
    return parts


def image_output(label: str, quality: int) -> list[str]:
    # passthrough + a millisecond time base: no duplicated stills, and the
    # outputs do not push -progress's out_time past the real position.
    return [
        "-map",
        f"[{label}]",
        "-c:v",
        "mjpeg",
        "-q:v",
        str(quality),
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        "1/1000",
        "-f",
        "image2",
    ]


def ladder_command(
    settings: TranscoderSettings,
    plan: LadderPlan,
    source: str,
    video_index: int,
    layout: OutputLayout,
) -> list[str]:
    argv = [settings.ffmpeg_path, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning"]
    if settings.input_read_rate > 0:
        argv += ["-readrate", fmt_seconds(settings.input_read_rate)]
    argv += [*input_options(source), "-i", source]
    argv += ["-filter_complex", filter_graph(plan, video_index)]
    times = cut_times(
        segment_boundaries(plan.duration, settings), 0.0, plan.duration, TS_OFFSET_SECONDS
    )
    keyframes = f"expr:gte(t,n_forced*{fmt_seconds(settings.keyframe_seconds)})"
    for i, r in enumerate(plan.video):
        argv += ["-map", f"[v{i}]", *video_codec_args(settings, plan, i, keyframes)]
        argv += ["-output_ts_offset", fmt_seconds(TS_OFFSET_SECONDS)]
        argv += segment_args(layout.rendition(r.name), times)
    argv += audio_outputs(settings, plan, layout, times)
    argv += [*image_output("poster", 3), "-update", "1", str(layout.thumbs / POSTER_NAME)]
    argv += [*image_output("stills", 4), str(layout.thumbs / STILL_PATTERN)]
    argv += [*image_output("sprite", 5), str(layout.tiles / TILE_PATTERN)]
    argv += PROGRESS_ARGS
    return argv


def audio_outputs(
    settings: TranscoderSettings, plan: LadderPlan, layout: OutputLayout, times: Sequence[float]
) -> list[str]:
    """Every audio rendition of the whole episode, each an output of its own."""
    argv: list[str] = []
    for a in plan.audio:
        argv += ["-map", f"0:{a.stream_index}", *audio_codec_args(settings)]
        argv += ["-output_ts_offset", fmt_seconds(TS_OFFSET_SECONDS)]
        argv += segment_args(layout.rendition(a.name), times)
    return argv


def video_codec_args(
    settings: TranscoderSettings, plan: LadderPlan, rung: int, keyframes: str
) -> list[str]:
    """libx264 with the rate control of one rung, for an output of its own."""
    r = plan.video[rung]
    gop_frames = max(1, math.ceil(plan.fps * settings.keyframe_seconds))
    return [
        "-c:v",
        "libx264",
        "-preset",
        settings.preset,
        "-profile:v",
        "high",
        # A keyframe on every keyframe interval, in time; no scene-cut keyframes
        # in between, and -g above the interval so x264 adds none of its own.
        "-force_key_frames",
        keyframes,
        "-sc_threshold",
        "0",
        "-g",
        str(gop_frames * 2),
        "-keyint_min",
        str(gop_frames),
        "-b:v",
        f"{r.video_kbps}k",
        "-maxrate:v",
        f"{r.maxrate_kbps}k",
        "-bufsize:v",
        f"{r.bufsize_kbps}k",
        "-level:v",
        r.level,
    ]


def audio_codec_args(settings: TranscoderSettings) -> list[str]:
    return ["-c:a", "aac", "-b:a", f"{settings.audio_kbps}k", "-ac", "2", "-ar", "48000"]


def segment_args(folder: Path, times: Sequence[float], *, start_number: int = 0) -> list[str]:
    """The segment muxer for one rendition, up to and including its output path.

    Segments are cut at the first keyframe at or after each of ``times``
    (output timestamps; a keyframe sits on each) and numbered from
    ``start_number``. The muxer adds a segment to its list (``index.m3u8``)
    only once the segment is complete, which is how the publisher knows it may
    be uploaded; :func:`~studio_transcoder.media.playlists.parse_segment_list`
    reads that list."""
    argv = ["-max_muxing_queue_size", "4096", "-f", "segment", "-segment_format", "mpegts"]
    if times:
        argv += ["-segment_times", ",".join(fmt_seconds(t) for t in times)]
    else:
        # One segment: no cut before the end.
        argv += ["-segment_time", "86400"]
    if start_number:
        argv += ["-segment_start_number", str(start_number)]
    argv += ["-segment_list", str(folder / PLAYLIST_NAME), "-segment_list_type", "m3u8"]
    argv.append(str(folder / SEGMENT_PATTERN))
    return argv


def sprite_command(
    settings: TranscoderSettings, plan: LadderPlan, layout: OutputLayout
) -> list[str]:
    """The trickplay tiles → sprite sheets of columns x rows (tiny JPEGs, no video decode)."""
    thumbs = plan.thumbnails
    return [
        settings.ffmpeg_path,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-framerate",
        "1",
        "-i",
        str(layout.tiles / TILE_PATTERN),
        "-vf",
        f"tile={thumbs.columns}x{thumbs.rows}",
        "-fps_mode",
        "passthrough",
        "-q:v",
        "5",
        str(layout.thumbs / SPRITE_PATTERN),
    ]


def subtitle_command(
    settings: TranscoderSettings,
    source: str,
    tracks: list[SubtitleRendition],
    layout: OutputLayout,
) -> list[str]:
    """Text subtitle streams of the source → WebVTT (and the ASS original), in one demux pass."""
    argv = [settings.ffmpeg_path, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    argv += [*input_options(source), "-i", source]
    for t in tracks:
        argv += ["-map", f"0:{t.stream_index}", "-c:s", "webvtt", "-f", "webvtt"]
        argv.append(str(layout.subs / f"{t.name}.vtt"))
        if t.keep_ass:
            argv += ["-map", f"0:{t.stream_index}", "-c:s", "copy", "-f", "ass"]
            argv.append(str(layout.subs / f"{t.name}.ass"))
    return argv


def subtitle_file_command(settings: TranscoderSettings, local: Path, out: Path) -> list[str]:
    """An uploaded subtitle file (SRT, ASS, WebVTT) → WebVTT."""
    return [
        settings.ffmpeg_path,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-i",
        str(local),
        "-c:s",
        "webvtt",
        "-f",
        "webvtt",
        str(out),
    ]
