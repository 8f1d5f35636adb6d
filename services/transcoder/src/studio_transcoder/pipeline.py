"""One attempt at one job: source → probe → one ffmpeg run → storage.

The attempt owns a fresh temp folder and writes every object under the
episode's prefix from scratch, so an attempt after a crash produces the same
complete result as a first one. It reports progress and the moment the episode
becomes playable through a :class:`Reporter`; it raises a
:class:`~studio_transcoder.failures.JobFailure` when it cannot finish.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from studio_common.events import EpisodeUploadedV1, SubtitleTrack
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.failures import JobFailure, PermanentFailure, TransientFailure
from studio_transcoder.media.command import (
    OutputLayout,
    ladder_command,
    sprite_command,
    subtitle_command,
    subtitle_file_command,
)
from studio_transcoder.media.fingerprint import Fingerprint, FingerprintError, fingerprint
from studio_transcoder.media.ladder import (
    LadderPlan,
    SubtitleFile,
    SubtitleRendition,
    plan_ladder,
)
from studio_transcoder.media.playlists import (
    SubtitleEntry,
    render_subtitle_playlist,
    sprite_vtt,
    with_timestamp_map,
)
from studio_transcoder.media.probe import SourceInfo, probe_decodable
from studio_transcoder.media.process import FfmpegRun, run_tool
from studio_transcoder.naming import UNDETERMINED, is_language, language_tag
from studio_transcoder.publisher import HlsPublisher
from studio_transcoder.storage import CACHE_FINAL, CACHE_IMMUTABLE, ObjectStore
from studio_transcoder.subtitles import (
    MANIFEST,
    FontSet,
    ManifestTrack,
    StoredFont,
    check_ass,
    extract_fonts,
    manifest,
)

SUBTITLE_EXTENSIONS = ("srt", "ass", "ssa", "vtt")
MAX_SUBTITLE_FILES = 20
POLL_SECONDS = 0.25
# Until the episode is playable: each poll's wait adds to the time to playable.
FIRST_POLL_SECONDS = 0.05
MPEGTS_CLOCK = 90_000
# ffmpeg's mpegts muxer starts the clock at 1.4 s; used if the first segment cannot be read.
DEFAULT_MPEGTS_START = 126_000


# Called once the source is probed and the ladder planned; True when it split
# the job into parts that the queue carries on (the attempt then ends here).
Splitter = Callable[[SourceInfo, LadderPlan], Awaitable[bool]]


class Reporter(Protocol):
    async def progress(self, percent: float) -> None: ...

    async def playable(self, master_key: str, renditions: list[str]) -> None: ...

    def note(self, line: str) -> None: ...


@dataclass
class AttemptResult:
    master_key: str
    master_url: str | None
    duration: float
    renditions: list[str]
    audio_languages: list[str]
    thumbnails: list[str]
    subtitles: list[SubtitleTrack]
    encode_seconds: float
    seconds_to_playable: float | None
    log_tail: str
    source_streamed: bool
    # The audio fingerprint of the first and last quarter (None: no audio, or it failed).
    fingerprint: Fingerprint | None = None


@dataclass
class _Source:
    input: str
    label: str
    streamed: bool
    redactions: dict[str, str] = field(default_factory=dict)


def subtitle_language(key: str) -> str:
    """``subtitles/en.srt``, ``subtitles/ep1.pt-BR.ass`` → ``en``, ``pt-BR``; else ``und``."""
    stem = posixpath.basename(key).rsplit(".", 1)[0]
    for token in reversed(stem.split(".")):
        if is_language(token) and len(token.split("-")[0]) in (2, 3):
            return language_tag(token)
    return UNDETERMINED


def source_url_ttl(settings: TranscoderSettings, duration: float) -> int:
    """How long a presigned source URL lives: long enough for a slow encode to
    still seek (range requests) near the end."""
    return int(max(settings.source_url_ttl_seconds, 600 + 4 * duration))


def classify_ffmpeg_exit(code: int, tail: str) -> JobFailure:
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "no output")
    if code < 0:
        return TransientFailure(
            "ffmpeg_killed", f"ffmpeg was killed by signal {-code}.", log_tail=tail
        )
    return TransientFailure(
        "ffmpeg", f"ffmpeg exited with code {code}: {last[-300:]}", log_tail=tail
    )


async def publish_while_running(
    runs: Sequence[FfmpegRun],
    publisher: HlsPublisher,
    on_step: Callable[[Sequence[asyncio.Task[int]]], None] | None = None,
) -> None:
    """Starts ``runs`` and has ``publisher`` upload and publish their segments
    until every run has exited, then drains it. A run that fails raises its
    classified failure; on any error every run is stopped and the uploads in
    flight are cancelled. ``on_step`` sees the runs' exits after each step."""
    started: list[FfmpegRun] = []
    try:
        for run in runs:
            started.append(run)
            await run.start()
        exits = [asyncio.create_task(run.wait()) for run in runs]
        while not all(e.done() for e in exits):
            # Until the episode is playable every poll adds to the wait.
            poll = POLL_SECONDS if publisher.playable else FIRST_POLL_SECONDS
            await asyncio.wait(exits, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            for run, code in zip(runs, exits, strict=True):
                if code.done() and code.result() != 0:
                    raise classify_ffmpeg_exit(code.result(), run.log_tail())
            await publisher.step()
            if on_step is not None:
                on_step(exits)
        await publisher.drain()
    except BaseException:
        for run in started:
            await run.stop()
        await publisher.abort()
        raise


class TranscodeAttempt:
    def __init__(
        self,
        settings: TranscoderSettings,
        store: ObjectStore,
        event: EpisodeUploadedV1,
        workdir: Path,
        reporter: Reporter,
        prefix: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.event = event
        self.workdir = workdir
        self.reporter = reporter
        # This attempt's own folder (``hls/{episodeId}/{version}/``), empty at the start.
        self.prefix = prefix
        self.layout = OutputLayout(workdir / "out")

    # --- the whole attempt --------------------------------------------------

    async def run(self, split: Splitter | None = None) -> AttemptResult | None:
        """The whole attempt; None when ``split`` took the job over."""
        started = time.monotonic()
        source = await self._source()
        info = await probe_decodable(
            self.settings.ffprobe_path,
            self.settings.ffmpeg_path,
            source.input,
            label=source.label,
            redactions=source.redactions,
        )
        if source.streamed:
            # The probe used a short-lived URL; ffmpeg gets one that outlives the encode.
            source = self._presigned(ttl=self._url_ttl(info))
        plan = plan_ladder(info, self.settings, await self._subtitle_files())
        for line in plan.ignored:
            self.reporter.note(line)
        self.reporter.note(
            f"source {info.video.codec} {info.video.width}x{info.video.height} "
            f"{info.video.fps:.3f} fps {info.video.pix_fmt}, {info.duration:.2f} s; "
            f"renditions {', '.join(v.name for v in plan.video)}; "
            f"audio {', '.join(a.language for a in plan.audio) or 'none'}; "
            f"subtitles {', '.join(s.language for s in plan.subtitles) or 'none'}; "
            f"{'streamed from storage' if source.streamed else 'read from a local copy'}"
        )
        if split is not None and await split(info, plan):
            return None
        self.layout.create(plan.track_names)
        clock: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        subtitles = asyncio.create_task(self._subtitles(plan, source, clock))
        publisher = HlsPublisher(
            self.store,
            self.settings,
            plan,
            self.layout,
            self.prefix,
            subtitles=subtitles,
            on_first_segment=lambda path: self._read_clock(path, clock),
            on_playable=lambda: self.reporter.playable(
                self.prefix + "master.m3u8", [v.name for v in plan.video]
            ),
        )

        async def on_progress(seconds: float) -> None:
            await self.reporter.progress(min(99.0, 100.0 * seconds / info.duration))

        ffmpeg = FfmpegRun(
            ladder_command(self.settings, plan, source.input, info.video.index, self.layout),
            on_progress=on_progress,
            redactions=source.redactions,
        )
        encode_started = time.monotonic()
        prints = asyncio.create_task(self._fingerprint(plan, source, info.duration))
        try:
            await publish_while_running([ffmpeg], publisher)
            encode_seconds = time.monotonic() - encode_started
            if not clock.done():
                clock.set_result(DEFAULT_MPEGTS_START)
            entries = await subtitles
            episode_print = await prints
            thumbnails = await self._upload_thumbnails(plan)
            await publisher.publish_media(final=True)
            await publisher.publish_master(final=True)
        except BaseException:
            await ffmpeg.stop()
            subtitles.cancel()
            prints.cancel()
            await publisher.abort()
            await asyncio.gather(subtitles, prints, return_exceptions=True)
            raise
        return AttemptResult(
            master_key=publisher.master_key,
            master_url=self.master_url(publisher.master_key),
            duration=info.duration,
            renditions=[v.name for v in plan.video],
            audio_languages=[a.language for a in plan.audio],
            thumbnails=thumbnails,
            subtitles=self._subtitle_tracks(plan, entries),
            encode_seconds=encode_seconds,
            seconds_to_playable=(
                publisher.playable_at - started if publisher.playable_at is not None else None
            ),
            log_tail=ffmpeg.log_tail(),
            source_streamed=source.streamed,
            fingerprint=episode_print,
        )

    async def _fingerprint(
        self, plan: LadderPlan, source: _Source, duration: float
    ) -> Fingerprint | None:
        """Audio only, the first and last quarter: a small fraction of the encode's CPU.
        Markers are a convenience, so a failure here never fails the job."""
        if not plan.audio:
            return None
        try:
            return await fingerprint(
                self.settings.ffmpeg_path,
                source.input,
                plan.audio[0].stream_index,
                duration,
                redactions=source.redactions,
            )
        except (FingerprintError, TimeoutError) as exc:
            self.reporter.note(f"no audio fingerprint: {exc}")
            return None

    def master_url(self, key: str) -> str | None:
        if self.settings.cdn_base_url:
            return f"{self.settings.cdn_base_url.rstrip('/')}/{key}"
        return None

    # --- source -------------------------------------------------------------

    def _presigned(self, ttl: int) -> _Source:
        key = self.event.source_key
        label = self.store.label(key)
        url = self.store.presigned_get(key, ttl)
        return _Source(input=url, label=label, streamed=True, redactions={url: label})

    def _url_ttl(self, info: SourceInfo) -> int:
        return source_url_ttl(self.settings, info.duration)

    async def _source(self) -> _Source:
        key = self.event.source_key
        label = self.store.label(key)
        size = await self.store.size(key)
        if size is None:
            raise TransientFailure("source_missing", f"The source {label} is not in storage.")
        if size == 0:
            raise PermanentFailure("empty_source", "The source file is empty (0 bytes).")
        mode = self.settings.source_access
        if mode != "download":
            streamed = self._presigned(ttl=self.settings.source_url_ttl_seconds)
            if mode == "stream" or await self.store.serves_ranges(key):
                return streamed
            self.reporter.note("storage does not answer range requests; downloading the source")
        suffix = re.sub(r"[^a-z0-9]", "", posixpath.splitext(key)[1].lower())[:8]
        local = self.workdir / f"source.{suffix or 'bin'}"
        await self.store.download(key, local)
        return _Source(input=str(local), label=label, streamed=False)

    # --- subtitles ----------------------------------------------------------

    async def _subtitle_files(self) -> list[SubtitleFile]:
        """The subtitle uploads the event names: verified by media and attached
        to this source by id. Nothing is picked up by where it lies in storage."""
        files = []
        for key in self.event.subtitle_keys[:MAX_SUBTITLE_FILES]:
            extension = posixpath.splitext(key)[1].lower().lstrip(".")
            if key.startswith("subtitles/") and extension in SUBTITLE_EXTENSIONS:
                files.append(SubtitleFile(key, subtitle_language(key), extension))
        return files

    async def _read_clock(self, first_segment: Path, clock: asyncio.Future[int]) -> None:
        """The MPEG-TS time at which the episode starts, from the first video segment."""
        result = await run_tool(
            [
                self.settings.ffprobe_path,
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=start_time",
                "-of",
                "csv=p=0",
                str(first_segment),
            ],
            time_limit=30,
        )
        try:
            start = float(result.stdout.decode().strip().splitlines()[0])
        except (ValueError, IndexError):
            self.reporter.note("could not read the first segment's start time; assuming 1.4 s")
            start = DEFAULT_MPEGTS_START / MPEGTS_CLOCK
        if not clock.done():
            clock.set_result(round(start * MPEGTS_CLOCK))

    async def _subtitles(
        self, plan: LadderPlan, source: _Source, clock: asyncio.Future[int]
    ) -> list[SubtitleEntry]:
        """Extracts, converts and uploads every subtitle rendition; returns what the master lists.

        ASS originals (and the fonts they need) go up beside their WebVTT, with
        ``subs/subtitles.json`` describing them; a malformed script keeps only
        its WebVTT, and a broken font is left out, each said in the job log."""
        subs = self.layout.subs
        from_source = [t for t in plan.subtitles if t.stream_index is not None]
        if from_source:
            await self._extract_streams(from_source, source, plan.duration)
        for track in plan.subtitles:
            if track.file is None:
                continue
            local = subs / f"upload-{track.name}.{track.file.extension}"
            await self.store.download(track.file.key, local)
            result = await run_tool(
                subtitle_file_command(self.settings, local, subs / f"{track.name}.vtt"),
                time_limit=120,
            )
            if result.returncode != 0:
                self.reporter.note(
                    f"subtitle file {track.file.key} could not be converted: {result.stderr[-300:]}"
                )
            if track.keep_ass:
                shutil.copyfile(local, subs / f"{track.name}.ass")
        scripts = self._check_scripts(plan)
        fonts = await self._fonts(source) if scripts else FontSet()
        mpegts = await clock
        entries = []
        described: list[ManifestTrack] = []
        for track in plan.subtitles:
            vtt = subs / f"{track.name}.vtt"
            if not vtt.exists():
                continue
            text = with_timestamp_map(vtt.read_text(encoding="utf-8", errors="replace"), mpegts)
            await self._put(f"subs/{track.name}.vtt", text, CACHE_IMMUTABLE)
            await self._put(
                f"subs/{track.name}.m3u8",
                render_subtitle_playlist(plan.duration, f"{track.name}.vtt"),
                CACHE_FINAL,
            )
            ass = subs / f"{track.name}.ass"
            families = scripts.get(track.name)
            files: list[StoredFont] = []
            missing: list[str] = []
            kept_ass = ass.exists() and families is not None
            if kept_ass and families is not None:
                await self._upload(ass, f"subs/{track.name}.ass", CACHE_IMMUTABLE)
                files, missing = fonts.covering(families)
                if missing:
                    self.reporter.note(
                        f"ASS track {track.name} names fonts the source does not attach "
                        f"(the player falls back): {', '.join(missing)[:300]}"
                    )
            entries.append(
                SubtitleEntry(
                    name=track.name,
                    language=track.language,
                    label=track.label,
                    forced=track.forced,
                    uri=f"subs/{track.name}.m3u8",
                )
            )
            described.append(
                ManifestTrack(
                    name=track.name,
                    language=track.language,
                    label=track.label,
                    default=track.default,
                    forced=track.forced,
                    webvtt=f"subs/{track.name}.vtt",
                    playlist=f"subs/{track.name}.m3u8",
                    ass=f"subs/{track.name}.ass" if kept_ass else None,
                    fonts=tuple(families or ()),
                    font_files=tuple(f.path for f in files),
                    missing_fonts=tuple(missing),
                )
            )
        # Every font goes up, needed by a script or not: a style may name it
        # by a name the font's name table spells differently.
        for font in fonts.fonts:
            await self._upload(font.local, font.path, CACHE_IMMUTABLE)
        if described:
            await self._put(MANIFEST, manifest(described, fonts.fonts), CACHE_FINAL)
        return entries

    async def _extract_streams(
        self, tracks: list[SubtitleRendition], source: _Source, duration: float
    ) -> None:
        """All text subtitle streams in one demux pass; if that fails, one by one,
        so one broken stream costs only itself."""
        result = await run_tool(
            subtitle_command(self.settings, source.input, tracks, self.layout),
            time_limit=max(120.0, duration),
            redactions=source.redactions,
        )
        if result.returncode == 0:
            return
        if len(tracks) == 1:
            self.reporter.note(
                f"subtitle stream #{tracks[0].stream_index} could not be extracted and was "
                f"left out: {result.stderr[-300:]}"
            )
            return
        for track in tracks:
            for stale in (f"{track.name}.vtt", f"{track.name}.ass"):
                (self.layout.subs / stale).unlink(missing_ok=True)
            await self._extract_streams([track], source, duration)

    def _check_scripts(self, plan: LadderPlan) -> dict[str, tuple[str, ...]]:
        """The ASS originals worth keeping, by track name → the font families they name.
        A malformed one is removed: its WebVTT conversion (if any) is what remains."""
        kept: dict[str, tuple[str, ...]] = {}
        for track in plan.subtitles:
            ass = self.layout.subs / f"{track.name}.ass"
            if not track.keep_ass or not ass.exists():
                continue
            check = check_ass(ass.read_bytes())
            if check.ok:
                kept[track.name] = check.fonts
                continue
            ass.unlink()
            self.reporter.note(
                f"ASS track {track.name} is malformed ({check.reason}); only its WebVTT "
                "conversion is kept"
            )
        return kept

    async def _fonts(self, source: _Source) -> FontSet:
        """The source's font attachments, once per attempt; never fails the job."""
        try:
            fonts = await extract_fonts(
                ffprobe=self.settings.ffprobe_path,
                ffmpeg=self.settings.ffmpeg_path,
                source=source.input,
                folder=self.workdir / "fonts",
                max_bytes=self.settings.font_max_bytes,
                redactions=source.redactions,
            )
        except (OSError, TimeoutError) as exc:
            fonts = FontSet(notes=[f"font attachments could not be extracted: {exc}"])
        for line in fonts.notes:
            self.reporter.note(line)
        if fonts.fonts:
            self.reporter.note(
                "fonts "
                + ", ".join(
                    f"{'/'.join(f.families[:1]) or f.filenames[0]} ({f.size // 1024} KiB)"
                    for f in fonts.fonts
                )[:500]
            )
        return fonts

    def _subtitle_tracks(
        self, plan: LadderPlan, entries: list[SubtitleEntry]
    ) -> list[SubtitleTrack]:
        published = {e.name for e in entries}
        tracks: list[SubtitleTrack] = []
        for t in plan.subtitles:
            if t.name not in published:
                continue
            tracks.append(
                SubtitleTrack(language=t.language, name=t.label, url=f"subs/{t.name}.vtt")
            )
            if (self.layout.subs / f"{t.name}.ass").exists():
                tracks.append(
                    SubtitleTrack(
                        language=t.language,
                        name=t.label,
                        url=f"subs/{t.name}.ass",
                        format="ass",
                    )
                )
        return tracks

    # --- thumbnails ---------------------------------------------------------

    async def _upload_thumbnails(self, plan: LadderPlan) -> list[str]:
        thumbs = self.layout.thumbs
        tiles = sorted(self.layout.tiles.glob("tile_*.jpg"))
        if tiles:
            result = await run_tool(
                sprite_command(self.settings, plan, self.layout), time_limit=120
            )
            if result.returncode != 0:
                self.reporter.note(f"sprite sheets could not be made: {result.stderr[-300:]}")
        stills = sorted(thumbs.glob("still_*.jpg"))
        sheets = sorted(thumbs.glob("sprite_*.jpg"))
        poster = thumbs / "poster.jpg"
        if not poster.exists() and stills:
            shutil.copyfile(stills[0], poster)
        # Paths inside the folder, not storage keys: viewers resolve them
        # against the playback URL.
        names: list[str] = []
        for path in ([poster] if poster.exists() else []) + stills + sheets:
            await self._upload(path, f"thumbs/{path.name}", CACHE_IMMUTABLE)
            names.append(f"thumbs/{path.name}")
        if sheets:
            t = plan.thumbnails
            vtt = sprite_vtt(
                duration=plan.duration,
                count=len(tiles),
                interval=t.sprite_interval,
                columns=t.columns,
                rows=t.rows,
                tile=t.tile_size,
                sheets=[p.name for p in sheets],
            )
            await self._put("thumbs/sprite.vtt", vtt, CACHE_IMMUTABLE)
            names.append("thumbs/sprite.vtt")
        return names

    # --- storage ------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self.prefix + name

    async def _upload(self, path: Path, name: str, cache_control: str) -> str:
        key = self._key(name)
        await self.store.upload_file(path, key, cache_control=cache_control)
        return key

    async def _put(self, name: str, text: str, cache_control: str) -> str:
        key = self._key(name)
        await self.store.put_text(key, text, cache_control=cache_control)
        return key
