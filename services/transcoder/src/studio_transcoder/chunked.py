"""One part of a chunked job, and the playlists stitched from the parts. No DB, no NATS.

A part is a video chunk (every video rendition of a range of segments), or one
of the side jobs encoded once for the whole episode: ``images`` (poster,
stills, sprite) and ``subtitles``. The ``head`` is chunk 0 and the whole
episode's audio (every audio rendition, and the fingerprint): two ffmpeg runs
whose segments go to storage as they are written, so the episode is playable
after its first segments, as a one-pass job is. Each writes under the
episode's prefix at the same keys the one-pass encode uses, so a part done
again overwrites its own objects and nothing is duplicated. What a part put in storage comes back as a
:class:`PartResult`, which is all the stitching needs.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio_common.events import EpisodeUploadedV1, SubtitleTrack
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import TransientFailure
from studio_transcoder.media.chunks import (
    ChunkSpec,
    audio_command,
    chunk_command,
    images_command,
    stitched_media_playlist,
)
from studio_transcoder.media.command import PLAYLIST_NAME, TS_OFFSET_SECONDS, OutputLayout
from studio_transcoder.media.fingerprint import (
    Fingerprint,
    pack,
    unpack,
)
from studio_transcoder.media.ladder import (
    AudioRendition,
    LadderPlan,
    SubtitleFile,
    SubtitleRendition,
    ThumbnailPlan,
    VideoRendition,
    plan_ladder,
)
from studio_transcoder.media.playlists import (
    Bandwidth,
    Segment,
    SubtitleEntry,
    declared_bandwidth,
    measure,
    parse_segment_list,
    render_master,
)
from studio_transcoder.media.probe import probe
from studio_transcoder.media.process import FfmpegRun
from studio_transcoder.models import AUDIO_KINDS, CHUNK_KINDS, QUEUED_KINDS
from studio_transcoder.pipeline import (
    MPEGTS_CLOCK,
    AttemptResult,
    TranscodeAttempt,
    classify_ffmpeg_exit,
    publish_while_running,
    source_url_ttl,
)
from studio_transcoder.publisher import MASTER_NAME, HlsPublisher
from studio_transcoder.storage import CACHE_FINAL, CACHE_GROWING, CACHE_IMMUTABLE, ObjectStore

# The head's audio run yields the CPU to its video run.
AUDIO_NICENESS = 10
# The MPEG-TS muxer starts its clock this far in (twice ffmpeg's default
# -muxdelay of 0.7 s), before TS_OFFSET_SECONDS.
MPEGTS_START_SECONDS = 1.4


@dataclass
class PartResult:
    """What a chunk or side job put in storage."""

    kind: str  # "head" | "video" | "images" | "subtitles"
    index: int  # chunk index (0 for side jobs)
    # rendition name -> its segments (name, duration, bytes) in order
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    # side job details: thumbnails, subtitle tracks and master entries,
    # fingerprint, notes for the job log
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "index": self.index,
            "segments": {
                name: [[s.uri, s.duration, s.size] for s in segments]
                for name, segments in self.segments.items()
            },
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartResult:
        return cls(
            kind=str(data["kind"]),
            index=int(data["index"]),
            segments={
                name: [Segment(str(u), float(d), int(b)) for u, d, b in segments]
                for name, segments in data.get("segments", {}).items()
            },
            extra=dict(data.get("extra", {})),
        )


class NoteReporter:
    """A reporter that keeps only the job-log lines: a part reports no progress
    or playable of its own (the orchestration does)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def progress(self, percent: float) -> None:
        return None

    async def playable(self, master_key: str, renditions: list[str]) -> None:
        return None

    def note(self, line: str) -> None:
        self.lines.append(line)


async def encode_part(
    settings: TranscoderSettings,
    store: ObjectStore,
    event: EpisodeUploadedV1,
    prefix: str,
    workdir: Path,
    kind: str,
    chunk: ChunkSpec | None,
    on_progress: Callable[[float], Awaitable[None]] | None = None,
    *,
    plan: LadderPlan | None = None,
    video_index: int | None = None,
    on_playable: Callable[[str], Awaitable[None]] | None = None,
) -> PartResult:
    """Encodes one part into storage under ``prefix``; safe to run again.

    ``plan`` and ``video_index`` are the ladder and the source's video stream
    planned when the job was split (see :func:`plan_to_json`); with both the
    part does not probe the source again, without them it plans it again (the
    same source and settings give the same plan). ``on_progress`` gets the
    fraction of this part done, 0..1; ``on_playable`` the master's key once the
    head's first segments and the master are in storage. Raises a
    :class:`~studio_transcoder.failures.JobFailure` like a one-pass attempt
    (transient: retry the part)."""
    if kind not in QUEUED_KINDS:
        raise ValueError(f"no part of kind {kind!r} is encoded")
    if kind in CHUNK_KINDS and chunk is None:
        raise ValueError(f"a {kind} part needs its chunk")
    if kind == "head" and chunk is not None and chunk.index != 0:
        raise ValueError("the head is chunk 0")
    notes = NoteReporter()
    attempt = TranscodeAttempt(settings, store, event, workdir, notes, prefix)
    started = time.monotonic()
    source = await attempt._source()
    if plan is None or video_index is None:
        info = await probe(
            settings.ffprobe_path, source.input, label=source.label, redactions=source.redactions
        )
        duration, video_index = info.duration, info.video.index
        if plan is None:
            plan = plan_ladder(info, settings, await attempt._subtitle_files())
    else:
        # Every part but the first would probe the same source again: a round
        # trip to storage and ffprobe's start before the encode.
        duration = plan.duration
    if source.streamed:
        source = attempt._presigned(ttl=source_url_ttl(settings, duration))
    layout = attempt.layout
    layout.create(plan.track_names)
    result = PartResult(kind=kind, index=chunk.index if chunk is not None else 0)

    async def report(fraction: float) -> None:
        if on_progress is not None:
            await on_progress(max(0.0, min(1.0, fraction)))

    if kind == "head":
        assert chunk is not None
        result.segments = await _encode_head(
            settings, store, prefix, plan, source.input, source.redactions,
            video_index, chunk, layout, report, on_playable,
        )  # fmt: skip
        _check_chunk(chunk, result, plan.duration, [v.name for v in plan.video])
        # After the encode, not beside it: it would slow the first segments.
        episode_print = await attempt._fingerprint(plan, source, plan.duration)
        if episode_print is not None:
            result.extra["fingerprint"] = fingerprint_to_json(episode_print)
    elif kind == "video":
        assert chunk is not None
        length = max(chunk.end - chunk.start, 1e-3)
        argv = chunk_command(settings, plan, source.input, video_index, chunk, layout)
        await _run(argv, source.redactions, lambda seconds: report(seconds / length))
        for v in plan.video:
            result.segments[v.name] = await _upload_rendition(
                settings, store, prefix, layout, v.name, chunk.start
            )
        _check_chunk(chunk, result, plan.duration, [v.name for v in plan.video])
    elif kind == "images":
        argv = images_command(settings, plan, source.input, video_index, layout)
        duration = max(plan.duration, 1e-3)
        await _run(argv, source.redactions, lambda seconds: report(seconds / duration))
        result.extra["thumbnails"] = await attempt._upload_thumbnails(plan)
    else:
        # The clock every output starts on (chunk_command and audio_command
        # share it), so no segment needs reading first.
        clock: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        clock.set_result(round((TS_OFFSET_SECONDS + MPEGTS_START_SECONDS) * MPEGTS_CLOCK))
        entries = await attempt._subtitles(plan, source, clock)
        result.extra["entries"] = [asdict(e) for e in entries]
        result.extra["tracks"] = [
            t.model_dump(mode="json", by_alias=True)
            for t in attempt._subtitle_tracks(plan, entries)
        ]
    await report(1.0)
    result.extra["encodeSeconds"] = round(time.monotonic() - started, 3)
    result.extra["sourceStreamed"] = source.streamed
    if notes.lines:
        result.extra["notes"] = notes.lines
    return result


async def _encode_head(
    settings: TranscoderSettings,
    store: ObjectStore,
    prefix: str,
    plan: LadderPlan,
    source: str,
    redactions: dict[str, str],
    video_index: int,
    chunk: ChunkSpec,
    layout: OutputLayout,
    report: Callable[[float], Awaitable[None]],
    on_playable: Callable[[str], Awaitable[None]] | None,
) -> dict[str, list[Segment]]:
    """Chunk 0 and the audio, two ffmpeg runs side by side, their segments
    uploaded as ffmpeg writes them (:class:`HlsPublisher`, as a one-pass job):
    the growing playlists and the master go up once every rendition has its
    first segments, so the episode is playable long before chunk 0 is whole.

    Nothing else writes playlists before the head has landed (see
    :func:`playable`), so the growing ones are this part's alone; from its
    landing on, the stitched playlists take over with the same segments."""
    done: asyncio.Future[list[SubtitleEntry]] = asyncio.get_running_loop().create_future()
    # Subtitles are a part of their own: the first master goes up without
    # them, the stitched master lists them once they are in.
    done.set_result([])

    async def playable() -> None:
        if on_playable is not None:
            await on_playable(publisher.master_key)

    async def nothing(_: Path) -> None:
        return None

    publisher = HlsPublisher(
        store, settings, plan, layout, prefix,
        subtitles=done, on_first_segment=nothing, on_playable=playable,
    )  # fmt: skip
    video_length = max(chunk.end - chunk.start, 1e-3)
    audio_length = max(plan.duration, 1e-3)
    # Progress: video and audio weighed by what they cost (the audio's share is small).
    shares = {"video": 0.0, "audio": 0.0 if plan.audio else 1.0}

    def follow(name: str, length: float) -> Callable[[float], Awaitable[None]]:
        async def progress(seconds: float) -> None:
            shares[name] = min(1.0, seconds / length)
            await report(0.9 * shares["video"] + 0.1 * shares["audio"])

        return progress

    runs = [
        FfmpegRun(
            chunk_command(settings, plan, source, video_index, chunk, layout),
            on_progress=follow("video", video_length),
            redactions=redactions,
        )
    ]
    if plan.audio:
        runs.append(
            FfmpegRun(
                audio_command(settings, plan, source, layout),
                on_progress=follow("audio", audio_length),
                redactions=redactions,
            )
        )
    audio = runs[1] if plan.audio else None
    audio_tracks = [t for t in publisher.tracks if t.kind == "audio"]

    def audio_waits(exits: Sequence[asyncio.Task[int]]) -> None:
        # The whole episode's audio, read and encoded at tens of times
        # realtime, has its first segment in a fraction of a second; then it
        # waits until the episode is playable, so the video's first segments
        # (what the player waits for) have the CPU, storage and the uploads to
        # themselves, and goes on niced. Niced from the start, its own first
        # segment came last.
        if audio is None or audio.niced:
            return
        if publisher.playable or exits[0].done():
            audio.renice(AUDIO_NICENESS)
            audio.resume()
        elif all(t.known for t in audio_tracks):
            audio.pause()

    await publish_while_running(runs, publisher, audio_waits)
    if not publisher.playable:
        await publisher.become_playable()
    return {
        track.name: [Segment(s.uri, s.duration, track.sizes[s.uri]) for s in track.known]
        for track in publisher.tracks
    }


async def _run(
    argv: list[str],
    redactions: dict[str, str],
    on_progress: Callable[[float], Awaitable[None]],
) -> None:
    ffmpeg = FfmpegRun(argv, on_progress=on_progress, redactions=redactions)
    try:
        await ffmpeg.start()
        code = await ffmpeg.wait()
    except BaseException:
        await ffmpeg.stop()
        raise
    if code != 0:
        raise classify_ffmpeg_exit(code, ffmpeg.log_tail())


async def _upload_rendition(
    settings: TranscoderSettings,
    store: ObjectStore,
    prefix: str,
    layout: OutputLayout,
    name: str,
    start: float,
) -> list[Segment]:
    """Every segment ffmpeg listed for one rendition (an output that begins at
    ``start`` on the source), uploaded; in order, with sizes."""
    folder = layout.rendition(name)
    try:
        listed = parse_segment_list((folder / PLAYLIST_NAME).read_text(), TS_OFFSET_SECONDS + start)
    except FileNotFoundError:
        raise TransientFailure(
            "ffmpeg_incomplete", f"ffmpeg wrote no playlist for {name}."
        ) from None
    if not listed.ended:
        raise TransientFailure("ffmpeg_incomplete", f"ffmpeg did not close the playlist of {name}.")
    slots = asyncio.Semaphore(settings.upload_concurrency)

    async def upload(segment: Segment) -> Segment:
        async with slots:
            path = folder / segment.uri
            size = await store.upload_file(
                path, f"{prefix}{name}/{segment.uri}", cache_control=CACHE_IMMUTABLE
            )
            path.unlink(missing_ok=True)
            return Segment(segment.uri, segment.duration, size)

    return list(await asyncio.gather(*(upload(s) for s in listed.segments)))


def _check_chunk(
    chunk: ChunkSpec, result: PartResult, duration: float, names: Sequence[str]
) -> None:
    """A chunk must hold exactly its segments: the next chunk's numbers follow them."""
    last = abs(chunk.end - duration) < 1e-6
    for name in names:
        count = len(result.segments.get(name, []))
        if count == chunk.segment_count or (last and count > 0):
            continue
        raise TransientFailure(
            "chunk_grid",
            f"chunk {chunk.index} of {name} has {count} segments, not {chunk.segment_count}.",
        )


# --- stitching -------------------------------------------------------------


def landed_chunks(parts: Sequence[PartResult]) -> list[PartResult]:
    """The video chunks from chunk 0 on without a gap: what the playlists may list."""
    by_index = {p.index: p for p in parts if p.kind in CHUNK_KINDS}
    out: list[PartResult] = []
    while len(out) in by_index:
        out.append(by_index[len(out)])
    return out


def playable(plan: LadderPlan, parts: Sequence[PartResult]) -> bool:
    """Chunk 0 and the audio are in storage: a player can start."""
    has_audio = not plan.audio or any(p.kind in AUDIO_KINDS for p in parts)
    return has_audio and bool(landed_chunks(parts))


async def publish_stitched(
    settings: TranscoderSettings,
    store: ObjectStore,
    prefix: str,
    plan: LadderPlan,
    parts: Sequence[PartResult],
    *,
    final: bool,
) -> str:
    """Writes every media playlist and the master; returns the master's key.

    Video playlists list the contiguous landed chunks from chunk 0, in order (a
    later chunk that finished early waits); audio playlists appear once the
    audio part is in; the master lists subtitles once that part is in.
    ``final``: every part is in; VOD playlists, and the master with bandwidth
    measured from the segments' sizes (until then, what the settings promise).
    The master goes up only once :func:`playable`: before that it would name
    playlists that do not exist yet (the key is returned all the same)."""
    chunks = landed_chunks(parts)
    audio = next((p for p in parts if p.kind in AUDIO_KINDS), None)
    subtitles = next((p for p in parts if p.kind == "subtitles"), None)
    if final and (not chunks or (plan.audio and audio is None) or subtitles is None):
        raise ValueError("the final playlists need chunk 0, the audio and the subtitles")
    cache = CACHE_FINAL if final else CACHE_GROWING
    video: dict[str, list[Segment]] = {
        v.name: [s for c in chunks for s in c.segments.get(v.name, [])] for v in plan.video
    }
    tracks: dict[str, list[Segment]] = dict(video)
    if audio is not None:
        tracks.update({a.name: audio.segments.get(a.name, []) for a in plan.audio})
    for name, segments in tracks.items():
        text = stitched_media_playlist(segments, settings, final=final)
        await store.put_text(f"{prefix}{name}/{PLAYLIST_NAME}", text, cache_control=cache)
    key = prefix + MASTER_NAME
    if not playable(plan, parts):
        return key
    entries = [SubtitleEntry(**e) for e in subtitles.extra.get("entries", [])] if subtitles else []
    video_bw, audio_bw = declared_bandwidth(plan, settings.audio_kbps)
    if final:
        video_bw = {
            name: _measured(segments, settings) or video_bw[name]
            for name, segments in video.items()
        }
        if audio is not None:
            measured = [_measured(audio.segments.get(a.name, []), settings) for a in plan.audio]
            found = [m for m in measured if m is not None]
            if found:
                audio_bw = Bandwidth(max(m.peak for m in found), max(m.average for m in found))
    text = render_master(
        plan, video_bandwidth=video_bw, audio_bandwidth=audio_bw, subtitles=entries
    )
    await store.put_text(key, text, cache_control=cache)
    return key


def _measured(segments: Sequence[Segment], settings: TranscoderSettings) -> Bandwidth | None:
    return measure([(s.duration, s.size) for s in segments], settings.segment_seconds)


def stitched_result(
    plan: LadderPlan,
    parts: Sequence[PartResult],
    *,
    master_key: str,
    master_url: str | None,
    seconds_to_playable: float | None = None,
) -> AttemptResult:
    """The finished job, as a one-pass attempt reports it (the same completion event)."""
    images = next((p for p in parts if p.kind == "images"), None)
    audio = next((p for p in parts if p.kind in AUDIO_KINDS), None)
    subtitles = next((p for p in parts if p.kind == "subtitles"), None)
    notes = [line for p in parts for line in p.extra.get("notes", [])]
    printed = audio.extra.get("fingerprint") if audio is not None else None
    return AttemptResult(
        master_key=master_key,
        master_url=master_url,
        duration=plan.duration,
        renditions=[v.name for v in plan.video],
        audio_languages=[a.language for a in plan.audio],
        thumbnails=list(images.extra.get("thumbnails", [])) if images else [],
        subtitles=[
            SubtitleTrack.model_validate(t)
            for t in (subtitles.extra.get("tracks", []) if subtitles else [])
        ],
        encode_seconds=sum(float(p.extra.get("encodeSeconds", 0.0)) for p in parts),
        seconds_to_playable=seconds_to_playable,
        log_tail="\n".join(dict.fromkeys(notes))[-4000:],
        source_streamed=any(bool(p.extra.get("sourceStreamed")) for p in parts),
        fingerprint=fingerprint_from_json(printed) if printed else None,
    )


# --- JSON forms --------------------------------------------------------------


def fingerprint_to_json(value: Fingerprint) -> dict[str, Any]:
    return {
        "duration": value.duration,
        "head": base64.b64encode(pack(value.head)).decode(),
        "tail": base64.b64encode(pack(value.tail)).decode(),
        "tailStart": value.tail_start,
    }


def fingerprint_from_json(data: dict[str, Any]) -> Fingerprint:
    return Fingerprint(
        duration=float(data["duration"]),
        head=unpack(base64.b64decode(data["head"])),
        tail=unpack(base64.b64decode(data["tail"])),
        tail_start=float(data["tailStart"]),
    )


def plan_to_json(plan: LadderPlan) -> dict[str, Any]:
    """The ladder plan as JSON, to keep with the job so every part encodes the same ladder."""
    return asdict(plan)


def plan_from_json(data: dict[str, Any]) -> LadderPlan:
    def subtitle(s: dict[str, Any]) -> SubtitleRendition:
        file = s.get("file")
        return SubtitleRendition(**{**s, "file": SubtitleFile(**file) if file else None})

    t = data["thumbnails"]
    return LadderPlan(
        duration=float(data["duration"]),
        fps=float(data["fps"]),
        video=tuple(VideoRendition(**v) for v in data["video"]),
        audio=tuple(AudioRendition(**a) for a in data["audio"]),
        subtitles=tuple(subtitle(s) for s in data["subtitles"]),
        thumbnails=ThumbnailPlan(
            **{
                **t,
                "poster_size": tuple(t["poster_size"]),
                "still_size": tuple(t["still_size"]),
                "tile_size": tuple(t["tile_size"]),
            }
        ),
        ignored=tuple(data["ignored"]),
    )
