"""ffprobe first: a source that is not a decodable video fails at once, with a reason.

What is wrong with the file (not video, no video stream, no duration, a codec
nothing here decodes) is permanent; what is wrong with the way to it (HTTP
errors, timeouts) is transient and retried.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

from studio_transcoder.failures import PermanentFailure, TransientFailure
from studio_transcoder.media.process import ToolResult, run_tool
from studio_transcoder.naming import UNDETERMINED, language_tag

TEXT_SUBTITLE_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
STILL_IMAGE_FORMATS = frozenset({"image2", "gif", "apng", "tiff_pipe"})
_NETWORK_HINTS = (
    "Server returned 5",
    "Server returned 403",
    "Server returned 404",
    "Connection refused",
    "Connection reset",
    "Connection timed out",
    "timed out",
    "Network is unreachable",
    "End of file while parsing",
    "Input/output error",
    "I/O error",
)


@dataclass(frozen=True, slots=True)
class VideoStream:
    index: int
    codec: str
    width: int  # display size: sample aspect ratio and rotation applied
    height: int
    fps: float
    pix_fmt: str


@dataclass(frozen=True, slots=True)
class AudioStream:
    index: int
    codec: str
    language: str
    tagged: bool
    title: str | None
    channels: int
    default: bool
    original: bool


@dataclass(frozen=True, slots=True)
class SubtitleStream:
    index: int
    codec: str
    language: str
    title: str | None
    forced: bool
    default: bool = False

    @property
    def is_text(self) -> bool:
        return self.codec in TEXT_SUBTITLE_CODECS


@dataclass(frozen=True, slots=True)
class SourceInfo:
    format_name: str
    duration: float
    video: VideoStream
    audio: tuple[AudioStream, ...]
    subtitles: tuple[SubtitleStream, ...]


def input_options(url: str) -> list[str]:
    """Reading over HTTP: time out instead of hanging, reconnect after a dropped connection."""
    if url.startswith(("http://", "https://")):
        return [
            "-rw_timeout",
            "30000000",
            "-reconnect",
            "1",
            "-reconnect_on_network_error",
            "1",
            "-reconnect_delay_max",
            "10",
        ]
    return []


def _network_problem(stderr: str) -> bool:
    return any(hint in stderr for hint in _NETWORK_HINTS)


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no output"


async def _run_probe(
    argv: list[str], time_limit: float, redactions: dict[str, str], too_slow: str
) -> ToolResult:
    """ffprobe or a decode check; not answering in time is transient."""
    try:
        return await run_tool(argv, time_limit=time_limit, redactions=redactions)
    except TimeoutError as exc:
        raise TransientFailure("probe_timeout", too_slow) from exc


def _raise_if_unreachable(stderr: str, what: str) -> None:
    """A tool that failed on the network, not on the file: worth another try."""
    if _network_problem(stderr):
        raise TransientFailure(
            "source_unreachable", f"{what}: {_last_line(stderr)}", log_tail=stderr[-4000:]
        )


def _rate(value: Any) -> float:
    try:
        num, _, den = str(value).partition("/")
        rate = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return rate if math.isfinite(rate) and 0 < rate <= 240 else 0.0


def _rotation(stream: dict[str, Any]) -> int:
    for item in stream.get("side_data_list") or []:
        if "rotation" in item:
            try:
                return int(float(item["rotation"])) % 360
            except (TypeError, ValueError):
                return 0
    try:
        return int((stream.get("tags") or {}).get("rotate", 0)) % 360
    except (TypeError, ValueError):
        return 0


def _display_size(stream: dict[str, Any]) -> tuple[int, int]:
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    sar = str(stream.get("sample_aspect_ratio") or "1:1")
    num, _, den = sar.partition(":")
    try:
        ratio = float(num) / float(den)
    except (ValueError, ZeroDivisionError):
        ratio = 1.0
    if ratio > 0 and math.isfinite(ratio) and abs(ratio - 1) > 1e-3:
        width = round(width * ratio)
    if _rotation(stream) in (90, 270):
        width, height = height, width
    return width, height


def _duration(data: dict[str, Any]) -> float:
    candidates = [(data.get("format") or {}).get("duration")]
    candidates += [s.get("duration") for s in data.get("streams") or []]
    best = 0.0
    for value in candidates:
        try:
            seconds = float(str(value))
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds):
            best = max(best, seconds)
    return best


def parse_probe(data: dict[str, Any]) -> SourceInfo:
    """The streams that matter, or a :class:`PermanentFailure` saying why there are none."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    format_name = str(fmt.get("format_name") or "")
    if not streams and not format_name:
        raise PermanentFailure(
            "not_video", "The file is not a video: ffprobe found no container and no streams."
        )
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if format_name in STILL_IMAGE_FORMATS or format_name.endswith("_pipe"):
        raise PermanentFailure(
            "not_video", f"The file is a still image ({format_name}), not a video."
        )
    if not videos:
        kinds = sorted({str(s.get("codec_type")) for s in streams}) or ["nothing"]
        raise PermanentFailure(
            "no_video_stream", f"The file has no video stream (it holds: {', '.join(kinds)})."
        )
    v = videos[0]
    width, height = _display_size(v)
    if width <= 0 or height <= 0:
        raise PermanentFailure(
            "undecodable", f"The video stream ({v.get('codec_name')}) has no frame size."
        )
    duration = _duration(data)
    if duration <= 0:
        raise PermanentFailure("zero_duration", "The video has no duration (0 seconds).")
    video = VideoStream(
        index=int(v["index"]),
        codec=str(v.get("codec_name") or "unknown"),
        width=width,
        height=height,
        fps=_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")) or 25.0,
        pix_fmt=str(v.get("pix_fmt") or "unknown"),
    )
    audio = []
    subtitles = []
    for s in streams:
        tags = s.get("tags") or {}
        disposition = s.get("disposition") or {}
        raw_language = tags.get("language")
        language = language_tag(raw_language)
        if s.get("codec_type") == "audio":
            audio.append(
                AudioStream(
                    index=int(s["index"]),
                    codec=str(s.get("codec_name") or "unknown"),
                    language=language,
                    tagged=language != UNDETERMINED,
                    title=tags.get("title"),
                    channels=int(s.get("channels") or 2),
                    default=bool(disposition.get("default")),
                    original=bool(disposition.get("original")),
                )
            )
        elif s.get("codec_type") == "subtitle":
            subtitles.append(
                SubtitleStream(
                    index=int(s["index"]),
                    codec=str(s.get("codec_name") or "unknown"),
                    language=language,
                    title=tags.get("title"),
                    forced=bool(disposition.get("forced")),
                    default=bool(disposition.get("default")),
                )
            )
    return SourceInfo(
        format_name=format_name,
        duration=duration,
        video=video,
        audio=tuple(audio),
        subtitles=tuple(subtitles),
    )


async def probe(
    ffprobe: str, url: str, *, label: str, redactions: dict[str, str], time_limit: float = 60
) -> SourceInfo:
    argv = [
        ffprobe,
        "-v",
        "error",
        *input_options(url),
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        url,
    ]
    result = await _run_probe(
        argv, time_limit, redactions, f"ffprobe did not answer within {time_limit:.0f} s."
    )
    if result.returncode != 0:
        _raise_if_unreachable(result.stderr, f"The source {label} could not be read")
        raise PermanentFailure(
            "not_video",
            f"The file is not a video ffmpeg can read ({_last_line(result.stderr)}).",
            log_tail=result.stderr[-4000:],
        )
    try:
        data = json.loads(result.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise PermanentFailure(
            "not_video", "ffprobe gave no readable answer for the file."
        ) from exc
    return parse_probe(data)


async def probe_decodable(
    ffprobe: str,
    ffmpeg: str,
    url: str,
    *,
    label: str,
    redactions: dict[str, str],
    time_limit: float = 60,
) -> SourceInfo:
    """:func:`probe`, and the first video frame decoded: a stream ffprobe names
    but nothing decodes fails here.

    The two run side by side (each waits on storage and its own start-up): the
    decode takes ``0:V:0``, the first video stream that is not an attached
    picture, which is the stream :func:`parse_probe` chooses."""
    decoding = asyncio.create_task(
        _run_probe(
            [
                ffmpeg,
                "-hide_banner",
                "-nostdin",
                "-v",
                "error",
                *input_options(url),
                "-i",
                url,
                "-map",
                "0:V:0",
                "-frames:v",
                "1",
                "-f",
                "framemd5",
                "-",
            ],
            time_limit,
            redactions,
            f"Decoding the first frame took over {time_limit:.0f} s.",
        )
    )
    try:
        info = await probe(ffprobe, url, label=label, redactions=redactions, time_limit=time_limit)
        result = await decoding
    except BaseException:
        # The probe's answer (not a video, no video stream) comes first.
        decoding.cancel()
        await asyncio.gather(decoding, return_exceptions=True)
        raise
    frames = [
        line
        for line in result.stdout.decode("ascii", "replace").splitlines()
        if line and not line.startswith("#")
    ]
    if result.returncode == 0 and frames:
        return info
    _raise_if_unreachable(result.stderr, "The source could not be read while decoding")
    raise PermanentFailure(
        "undecodable",
        f"The video stream ({info.video.codec}) could not be decoded: {_last_line(result.stderr)}",
        log_tail=result.stderr[-4000:],
    )
