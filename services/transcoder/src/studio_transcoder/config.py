"""Transcoder settings (``TRANSCODER_*``, falling back to ``STUDIO_*``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings

_RUNG = re.compile(r"^\s*(\d{2,4})\s*:\s*(\d{2,6})\s*k?\s*$")


@dataclass(frozen=True, slots=True)
class Rung:
    """One step of the ladder: the short side in pixels and the video bitrate."""

    height: int
    video_kbps: int

    @property
    def maxrate_kbps(self) -> int:
        # Peak and buffer as in the reference command (maxrate 1.07x, bufsize 1.5x).
        return round(self.video_kbps * 1.07)

    @property
    def bufsize_kbps(self) -> int:
        return round(self.video_kbps * 1.5)


def parse_ladder(value: str) -> list[Rung]:
    """``"1080:5000,720:2800,480:1400"`` → rungs, highest first."""
    rungs: list[Rung] = []
    for part in value.split(","):
        if not part.strip():
            continue
        match = _RUNG.match(part)
        if match is None:
            raise ValueError(f"ladder step {part!r} is not <height>:<kbps>")
        height, kbps = int(match.group(1)), int(match.group(2))
        if height % 2 or not 144 <= height <= 4320:
            raise ValueError(f"ladder height {height} must be even and between 144 and 4320")
        rungs.append(Rung(height, kbps))
    if not rungs:
        raise ValueError("the ladder needs at least one step")
    if len({r.height for r in rungs}) != len(rungs):
        raise ValueError("ladder heights must be distinct")
    return sorted(rungs, key=lambda r: r.height, reverse=True)


class TranscoderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRANSCODER_", extra="ignore")

    # --- encoding -----------------------------------------------------------
    # "<short side>:<video kbps>" steps; a step above the source is skipped.
    ladder: str = "1080:5000,720:2800,480:1400"
    # libx264 preset: veryfast is about 2x faster than medium on 2 cores at
    # ~10-15% more bits for the same quality (docs/adr/0004).
    preset: str = "veryfast"
    segment_seconds: float = Field(default=6.0, gt=0, le=30)
    # Keyframe interval; the segment length must be a multiple of it.
    keyframe_seconds: float = Field(default=2.0, gt=0, le=10)
    # The first segment_seconds are cut on every keyframe (three 2 s segments
    # by default): a player can start after one keyframe interval of every
    # rendition is encoded instead of a whole segment.
    short_start: bool = True
    audio_kbps: int = Field(default=128, ge=32, le=512)
    ffmpeg_path: str = "ffmpeg"
    ffprobe_path: str = "ffprobe"
    # Throttles reading the source to N x realtime (ffmpeg -readrate); 0 = as
    # fast as possible. Only for demos and tests that need a job to take time.
    input_read_rate: float = Field(default=0.0, ge=0)

    # --- thumbnails (extra outputs of the same filter graph) -----------------
    still_interval_seconds: float = Field(default=10.0, gt=0)
    sprite_interval_seconds: float = Field(default=5.0, gt=0)
    sprite_columns: int = Field(default=10, ge=1, le=20)
    sprite_rows: int = Field(default=10, ge=1, le=20)
    # Long side of one sprite tile in pixels.
    sprite_thumb_size: int = Field(default=160, ge=32, le=640)
    # The poster is the first frame at this fraction of the duration.
    poster_position: float = Field(default=0.1, ge=0, lt=1)

    # --- source and output --------------------------------------------------
    # auto: ffmpeg reads a presigned URL when the store answers range requests,
    # else the source is downloaded first. stream/download force one way.
    source_access: Literal["auto", "stream", "download"] = "auto"
    # Lifetime of the presigned source URL: at least this, longer for long sources.
    source_url_ttl_seconds: int = Field(default=900, ge=60, le=43_200)
    # hls_master_url = <cdn_base_url>/<key> when set, else none (storage paths stay inside).
    cdn_base_url: str | None = None
    upload_concurrency: int = Field(default=4, ge=1, le=32)
    # Segments of every rendition in storage before the playlists are published.
    playable_after_segments: int = Field(default=1, ge=1, le=20)
    # How long a playable episode may wait for its subtitles before the first
    # master goes up without them (the final master always has them).
    playable_subtitle_wait_seconds: float = Field(default=30.0, ge=0)
    # Growing (EVENT) playlists are republished at most this often.
    playlist_publish_seconds: float = Field(default=2.0, ge=0)
    work_dir: str | None = None
    # A font attachment larger than this is refused (said in the job log); a
    # full CJK font is 5-20 MiB.
    font_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)

    # --- chunked transcoding -------------------------------------------------
    # A source at least chunk_min_seconds long is encoded as chunks of
    # chunk_segments whole segments (video only) that any worker may take, plus
    # the head (chunk 0 and the audio, streamed), an images and a subtitles
    # job; shorter ones stay one job. On: a 10-minute source plays sooner
    # than one pass's (3.4 s against 5.4 s) and costs no more CPU
    # (bench/README.md); several workers make it ready sooner.
    chunking: bool = True
    chunk_min_seconds: float = Field(default=300.0, gt=0)
    chunk_segments: int = Field(default=10, ge=1, le=1000)

    # --- progress -----------------------------------------------------------
    progress_interval_seconds: float = Field(default=2.0, ge=0)
    progress_step_percent: float = Field(default=5.0, gt=0, le=100)

    # --- worker -------------------------------------------------------------
    max_attempts: int = Field(default=3, ge=1, le=20)
    # Backoff before transient retry n: retry_backoff_seconds * 2^(n-1).
    retry_backoff_seconds: float = Field(default=10.0, ge=0)
    worker_concurrency: int = Field(default=1, ge=1, le=16)
    # The worker's database pool (and as many again in overflow); empty: two
    # connections per concurrent job (its advisory lock and its writes) plus one
    # for the relay's rounds.
    worker_database_pool_size: int | None = Field(default=None, ge=1, le=50)
    worker_ack_wait_seconds: float = Field(default=60.0, ge=1)
    # Deliveries of one message before it is dead-lettered whatever happened.
    worker_max_deliver: int = Field(default=10, ge=2)
    worker_fetch_timeout_seconds: float = Field(default=2.0, gt=0)
    # On SIGTERM a running job gets this long to finish before it is handed back.
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    # Storage (or the way to it) unreachable is not the job's fault: the worker
    # takes no new job, retries the current step and redoes an attempt the
    # outage broke without counting it, for up to this long per outage; past
    # it the job is handed back to the queue, still without counting.
    storage_outage_tolerance_seconds: float = Field(default=600.0, ge=0)
    # While storage is away it is probed with jittered backoff up to this interval.
    storage_probe_max_seconds: float = Field(default=30.0, gt=0)
    # Prometheus metrics of the worker process; 0 = not served. Served before
    # the worker takes any job; a port already taken (a second worker on one
    # machine) falls back to a free one, logged.
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    # Loopback unless told otherwise (the chart sets 0.0.0.0 for its scraper).
    worker_metrics_host: str = "127.0.0.1"
    # /healthz on the metrics port fails once a fetch loop with a free slot has
    # not turned for this long while NATS is up, or the event loop is stuck.
    worker_liveness_seconds: float = Field(default=60.0, gt=0)
    # How often the API process refreshes its jobs-by-status gauge.
    jobs_gauge_refresh_seconds: float = Field(default=15.0, gt=0)

    @field_validator("ladder")
    @classmethod
    def _valid_ladder(cls, value: str) -> str:
        parse_ladder(value)
        return value

    @model_validator(mode="after")
    def _segments_hold_whole_gops(self) -> TranscoderSettings:
        ratio = self.segment_seconds / self.keyframe_seconds
        if abs(ratio - round(ratio)) > 1e-6:
            raise ValueError("segment_seconds must be a multiple of keyframe_seconds")
        return self

    @property
    def worker_pool_size(self) -> int:
        return self.worker_database_pool_size or 2 * self.worker_concurrency + 1

    def worker_database_connections(self) -> int:
        """The most a worker process opens: its pool and as many again in
        overflow, and its relay's LISTEN connection (it never uses the read pool)."""
        return 2 * self.worker_pool_size + 1

    @property
    def rungs(self) -> list[Rung]:
        return parse_ladder(self.ladder)
