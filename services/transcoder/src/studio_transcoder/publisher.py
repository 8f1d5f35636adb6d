"""Uploads segments while ffmpeg still runs, and publishes playlists that grow.

A segment is complete once ffmpeg's segment list names it: the segment muxer
rewrites that list right after closing the segment (every output here starts
at the episode's beginning). Complete segments upload with bounded concurrency and leave the temp
folder. A published media playlist lists only the segments already in storage,
in order. Once every rendition has its first segments in storage the master
goes up too and the episode is playable; at the end the playlists are closed
with ``#EXT-X-ENDLIST`` and the master, with measured bandwidths, goes last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import TransientFailure
from studio_transcoder.media.command import PLAYLIST_NAME, TS_OFFSET_SECONDS, OutputLayout
from studio_transcoder.media.ladder import LadderPlan
from studio_transcoder.media.playlists import (
    Bandwidth,
    Segment,
    SubtitleEntry,
    declared_bandwidth,
    measure,
    parse_segment_list,
    render_master,
    render_media_playlist,
    target_duration,
)
from studio_transcoder.storage import CACHE_FINAL, CACHE_GROWING, CACHE_IMMUTABLE, ObjectStore

MASTER_NAME = "master.m3u8"


@dataclass
class Track:
    """One rendition folder ffmpeg writes (a video rung or an audio language)."""

    name: str
    kind: str
    folder: Path
    known: list[Segment] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    ended: bool = False
    published: int = -1

    def in_storage(self) -> int:
        """How many segments, from the first, are uploaded without a gap."""
        count = 0
        for segment in self.known:
            if segment.uri not in self.sizes:
                break
            count += 1
        return count


class HlsPublisher:
    def __init__(
        self,
        store: ObjectStore,
        settings: TranscoderSettings,
        plan: LadderPlan,
        layout: OutputLayout,
        prefix: str,
        *,
        subtitles: asyncio.Future[list[SubtitleEntry]],
        on_first_segment: Callable[[Path], Awaitable[None]],
        on_playable: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.settings = settings
        self.plan = plan
        self.prefix = prefix
        self.subtitles = subtitles
        self.on_first_segment = on_first_segment
        self.on_playable = on_playable
        self.tracks = [Track(v.name, "video", layout.rendition(v.name)) for v in plan.video]
        self.tracks += [Track(a.name, "audio", layout.rendition(a.name)) for a in plan.audio]
        self._slots = asyncio.Semaphore(settings.upload_concurrency)
        self._uploads: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []
        self._first_segment_seen = False
        self._last_publish = 0.0
        self._segments_ready_at: float | None = None
        self.playable = False
        self.playable_at: float | None = None

    @property
    def master_key(self) -> str:
        return self.prefix + MASTER_NAME

    def key(self, track: Track, name: str) -> str:
        return f"{self.prefix}{track.name}/{name}"

    # --- segments -----------------------------------------------------------

    async def scan(self) -> None:
        """Queues the upload of every segment ffmpeg has finished since the last scan."""
        for track in self.tracks:
            path = track.folder / PLAYLIST_NAME
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            playlist = parse_segment_list(text, TS_OFFSET_SECONDS)
            for segment in playlist.segments[len(track.known) :]:
                track.known.append(segment)
                if track is self.tracks[0] and not self._first_segment_seen:
                    # Read before the upload removes it (the subtitles' clock).
                    self._first_segment_seen = True
                    await self.on_first_segment(track.folder / segment.uri)
                task = asyncio.create_task(self._upload(track, segment))
                self._uploads.add(task)
                task.add_done_callback(self._uploads.discard)
            track.ended = playlist.ended
        self._raise_errors()

    async def _upload(self, track: Track, segment: Segment) -> None:
        async with self._slots:
            path = track.folder / segment.uri
            try:
                size = await self.store.upload_file(
                    path, self.key(track, segment.uri), cache_control=CACHE_IMMUTABLE
                )
            except Exception as exc:
                self._errors.append(exc)
                return
            track.sizes[segment.uri] = size
            # The temp folder holds only what is not in storage yet.
            path.unlink(missing_ok=True)

    def _raise_errors(self) -> None:
        if self._errors:
            exc = self._errors[0]
            if isinstance(exc, TransientFailure):
                raise exc
            raise TransientFailure("storage", f"A segment upload failed: {exc}") from exc

    async def step(self) -> None:
        """Called while ffmpeg runs: upload, then publish what became playable."""
        await self.scan()
        if not self.playable:
            if all(self._ready_to_play(t) for t in self.tracks):
                self._segments_ready_at = self._segments_ready_at or time.monotonic()
            # The first master carries the subtitles unless extracting them
            # (a pass over the whole source) keeps the episode waiting too long.
            waited = time.monotonic() - (self._segments_ready_at or time.monotonic())
            if self._segments_ready_at and (
                self.subtitles.done() or waited >= self.settings.playable_subtitle_wait_seconds
            ):
                await self.become_playable()
        elif time.monotonic() - self._last_publish >= self.settings.playlist_publish_seconds:
            await self.publish_media(final=False)

    async def become_playable(self) -> None:
        """The growing playlists and the master go up; the episode can be played."""
        await self.publish_media(final=False)
        await self.publish_master(final=False)
        self.playable = True
        self.playable_at = time.monotonic()
        await self.on_playable()

    def _ready_to_play(self, track: Track) -> bool:
        uploaded = track.in_storage()
        if uploaded >= self.settings.playable_after_segments:
            return True
        # A source shorter than the first segments: all of it is there.
        return track.ended and 0 < uploaded == len(track.known)

    async def drain(self) -> None:
        """After ffmpeg exited: every segment listed, uploaded, every playlist ended."""
        await self.scan()
        while self._uploads:
            await asyncio.gather(*list(self._uploads))
        self._raise_errors()
        unfinished = [t.name for t in self.tracks if not t.ended]
        if unfinished:
            raise TransientFailure(
                "ffmpeg_incomplete",
                f"ffmpeg exited without closing the playlists of {', '.join(unfinished)}.",
            )

    async def abort(self) -> None:
        for task in list(self._uploads):
            task.cancel()
        await asyncio.gather(*list(self._uploads), return_exceptions=True)

    # --- playlists ----------------------------------------------------------

    async def publish_media(self, *, final: bool) -> None:
        self._last_publish = time.monotonic()
        for track in self.tracks:
            count = len(track.known) if final else track.in_storage()
            if count == track.published and not final:
                continue
            segments = track.known[:count]
            text = render_media_playlist(
                segments,
                target=target_duration(self.settings.segment_seconds, track.known),
                ended=final,
            )
            await self.store.put_text(
                self.key(track, PLAYLIST_NAME),
                text,
                cache_control=CACHE_FINAL if final else CACHE_GROWING,
            )
            track.published = count

    def measured_bandwidth(self) -> tuple[dict[str, Bandwidth], Bandwidth | None]:
        declared_video, declared_audio = declared_bandwidth(self.plan, self.settings.audio_kbps)
        video: dict[str, Bandwidth] = {}
        audio: Bandwidth | None = None
        for track in self.tracks:
            samples = [(s.duration, track.sizes.get(s.uri, 0)) for s in track.known]
            bw = measure(samples, self.settings.segment_seconds)
            if track.kind == "video":
                video[track.name] = bw or declared_video[track.name]
            elif bw is not None:
                audio = (
                    bw
                    if audio is None
                    else Bandwidth(max(audio.peak, bw.peak), max(audio.average, bw.average))
                )
        return video, audio if audio is not None else declared_audio

    async def publish_master(self, *, final: bool) -> None:
        if final or self.subtitles.done():
            subtitles = await self.subtitles
        else:
            subtitles = []
        if final:
            video, audio = self.measured_bandwidth()
        else:
            video, audio = declared_bandwidth(self.plan, self.settings.audio_kbps)
        text = render_master(
            self.plan, video_bandwidth=video, audio_bandwidth=audio, subtitles=subtitles
        )
        await self.store.put_text(
            self.master_key, text, cache_control=CACHE_FINAL if final else CACHE_GROWING
        )
