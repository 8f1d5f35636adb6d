"""HLS playlists: reading ffmpeg's, writing the ones players get. Pure.

ffmpeg's segment lists say which segments are complete; the published media
playlists list only segments already in storage (an EVENT playlist that grows
and is closed with ``#EXT-X-ENDLIST``). The master is always written here: it
carries every audio language and subtitle rendition, and BANDWIDTH measured
from the segments once they all exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from studio_transcoder.media.ladder import LadderPlan


@dataclass(frozen=True, slots=True)
class Segment:
    uri: str
    duration: float
    # Bytes in storage, when known (a chunk reports its segments' sizes so the
    # stitched master can measure bandwidth without listing the bucket).
    size: int = 0


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    segments: tuple[Segment, ...]
    ended: bool


def parse_media_playlist(text: str) -> MediaPlaylist:
    segments: list[Segment] = []
    duration: float | None = None
    ended = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            try:
                duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
            except ValueError:
                duration = None
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line and not line.startswith("#") and duration is not None:
            segments.append(Segment(line, duration))
            duration = None
    return MediaPlaylist(tuple(segments), ended)


def parse_segment_list(text: str, output_start: float) -> MediaPlaylist:
    """The segment muxer's list of one output's complete segments.

    The muxer rewrites the list in place after each segment, so a read may end
    mid-line: an unfinished last line is left for the next read. It also counts
    the first segment from timestamp 0 rather than from where the output
    starts (``output_start``: the output's ``-output_ts_offset``), so the first
    duration is corrected by that much."""
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    listed = parse_media_playlist(text)
    if not listed.segments:
        return listed
    first = listed.segments[0]
    duration = round(max(0.0, first.duration - output_start), 6)
    return MediaPlaylist(
        (Segment(first.uri, duration, first.size), *listed.segments[1:]), listed.ended
    )


def target_duration(segment_seconds: float, segments: Sequence[Segment]) -> int:
    # Every EXTINF rounded to the nearest integer must be <= the target, and an
    # EVENT playlist must keep its target: segments are cut on forced keyframes,
    # so they never run past the configured length by half a second.
    longest = max((round(s.duration) for s in segments), default=0)
    return max(1, math.ceil(segment_seconds - 1e-6), longest)


def render_media_playlist(
    segments: Sequence[Segment],
    *,
    target: int,
    ended: bool,
    version: int = 6,
    playlist_type: str = "EVENT",
) -> str:
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{playlist_type}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for s in segments:
        lines += [f"#EXTINF:{s.duration:.6f},", s.uri]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_subtitle_playlist(duration: float, uri: str) -> str:
    """One WebVTT file covering the whole episode, as a VOD media playlist."""
    return (
        "\n".join(
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                f"#EXT-X-TARGETDURATION:{max(1, math.ceil(duration))}",
                "#EXT-X-MEDIA-SEQUENCE:0",
                "#EXT-X-PLAYLIST-TYPE:VOD",
                f"#EXTINF:{duration:.6f},",
                uri,
                "#EXT-X-ENDLIST",
            ]
        )
        + "\n"
    )


def with_timestamp_map(vtt: str, mpegts: int) -> str:
    """Adds X-TIMESTAMP-MAP so cue times line up with the MPEG-TS segments' clock."""
    lines = vtt.replace("\r\n", "\n").split("\n")
    lines = [line for line in lines if not line.startswith("X-TIMESTAMP-MAP=")]
    if not lines or not lines[0].startswith("WEBVTT"):
        lines.insert(0, "WEBVTT")
    lines.insert(1, f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Bandwidth:
    peak: int  # bit/s
    average: int


def measure(segments: Sequence[tuple[float, int]], segment_seconds: float) -> Bandwidth | None:
    """Peak and average bit rate from (duration, bytes) of every segment.

    The peak is over every segment, the short tail too (RFC 8216 4.3.4.2: the
    largest bit rate of any segment), so it is never below the average.
    """
    if not segments:
        return None
    total_bytes = sum(size for _, size in segments)
    total_seconds = sum(duration for duration, _ in segments)
    peak = max(size * 8 / max(d, 1e-3) for d, size in segments)
    average = total_bytes * 8 / max(total_seconds, 1e-3)
    return Bandwidth(peak=math.ceil(peak), average=math.ceil(average))


@dataclass(frozen=True, slots=True)
class SubtitleEntry:
    name: str
    language: str
    label: str
    forced: bool
    uri: str


def _quote(value: str) -> str:
    return '"' + value.replace('"', "'").replace("\n", " ") + '"'


def render_master(
    plan: LadderPlan,
    *,
    video_bandwidth: dict[str, Bandwidth],
    audio_bandwidth: Bandwidth | None,
    subtitles: Sequence[SubtitleEntry],
    audio_group: str = "audio",
    subtitle_group: str = "subs",
) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for a in plan.audio:
        lines.append(
            "#EXT-X-MEDIA:TYPE=AUDIO,"
            f"GROUP-ID={_quote(audio_group)},NAME={_quote(a.label)},LANGUAGE={_quote(a.language)},"
            f'DEFAULT={"YES" if a.default else "NO"},AUTOSELECT=YES,CHANNELS="2",'
            f"URI={_quote(f'{a.name}/index.m3u8')}"
        )
    for s in subtitles:
        lines.append(
            "#EXT-X-MEDIA:TYPE=SUBTITLES,"
            f"GROUP-ID={_quote(subtitle_group)},NAME={_quote(s.label)},LANGUAGE={_quote(s.language)},"
            f"DEFAULT=NO,AUTOSELECT=YES,FORCED={'YES' if s.forced else 'NO'},URI={_quote(s.uri)}"
        )
    codecs = plan.codecs
    for v in plan.video:
        bw = video_bandwidth[v.name]
        peak, average = bw.peak, bw.average
        if audio_bandwidth is not None:
            peak += audio_bandwidth.peak
            average += audio_bandwidth.average
        attrs = [
            f"BANDWIDTH={peak}",
            f"AVERAGE-BANDWIDTH={average}",
            f"RESOLUTION={v.width}x{v.height}",
            f"FRAME-RATE={plan.fps:.3f}",
            f"CODECS={_quote(codecs[v.name])}",
        ]
        if plan.audio:
            attrs.append(f"AUDIO={_quote(audio_group)}")
        if subtitles:
            attrs.append(f"SUBTITLES={_quote(subtitle_group)}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), f"{v.name}/index.m3u8"]
    return "\n".join(lines) + "\n"


def declared_bandwidth(
    plan: LadderPlan, audio_kbps: int
) -> tuple[dict[str, Bandwidth], Bandwidth | None]:
    """What the settings promise, for the master published before the segments all exist."""
    video = {
        v.name: Bandwidth(peak=v.maxrate_kbps * 1100, average=v.video_kbps * 1000)
        for v in plan.video
    }
    audio = Bandwidth(peak=audio_kbps * 1100, average=audio_kbps * 1000) if plan.audio else None
    return video, audio


def sprite_vtt(
    *,
    duration: float,
    count: int,
    interval: float,
    columns: int,
    rows: int,
    tile: tuple[int, int],
    sheets: Sequence[str],
) -> str:
    """The trickplay map: each interval of the episode → a tile of a sprite sheet."""
    per_sheet = columns * rows
    count = min(count, per_sheet * len(sheets))
    tw, th = tile
    lines = ["WEBVTT", ""]
    for i in range(count):
        sheet, cell = divmod(i, per_sheet)
        row, col = divmod(cell, columns)
        start, end = i * interval, min((i + 1) * interval, duration)
        lines += [
            f"{_timestamp(start)} --> {_timestamp(end)}",
            f"{sheets[sheet]}#xywh={col * tw},{row * th},{tw},{th}",
            "",
        ]
    return "\n".join(lines)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"
