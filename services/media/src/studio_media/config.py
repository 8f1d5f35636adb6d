from __future__ import annotations

import secrets
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings

# Generated once per process when no key is configured in development: tokens
# then stop working across restarts and replicas. Anywhere else the service
# refuses to start without MEDIA_PLAYBACK_SIGNING_KEY.
_DEV_SIGNING_KEY = secrets.token_urlsafe(32)


class MediaSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIA_", extra="ignore")

    # --- uploads ---------------------------------------------------------
    presign_expires_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    # Size caps per key prefix, in bytes.
    max_source_bytes: int = Field(default=20 * 1024**3, ge=1)
    max_image_bytes: int = Field(default=15 * 1024**2, ge=1)
    max_subtitle_bytes: int = Field(default=5 * 1024**2, ge=1)
    # Multipart: S3 wants at least 5 MiB per part (but the last) and at most 10 000 parts.
    multipart_part_size: int = Field(default=64 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    # Uploads older than this are aborted; 0 disables the periodic sweep in the API process.
    upload_max_age_hours: float = Field(default=24.0, gt=0)
    upload_cleanup_interval_seconds: float = Field(default=3600.0, ge=0)

    # --- rate limits (shared by every replica through Redis) -------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    rate_limit_prefix: str = Field(default="studio:media:rl", pattern=r"^[A-Za-z0-9:_.-]+$")
    presign_rate_limit: int = Field(default=60, ge=1)
    presign_rate_window_seconds: int = Field(default=60, ge=1)
    playback_rate_limit: int = Field(default=120, ge=1)
    playback_rate_window_seconds: int = Field(default=60, ge=1)

    # --- playback --------------------------------------------------------
    # "token": /hls/{token}/{episodeId}/... served (or redirected) by this service.
    # "cdn": CloudFront signed URL + cookies with a wildcard custom policy.
    playback_mode: Literal["token", "cdn"] = "token"
    playback_url_ttl_seconds: int = Field(default=4 * 3600, ge=60, le=7 * 24 * 3600)
    # HMAC key for playback tokens. Required outside development; development
    # gets a random per-process key (tokens then die with the process).
    playback_signing_key: str = ""
    # Keys still accepted while a new one rolls out.
    playback_previous_signing_keys: list[str] = Field(default_factory=list)
    # Base URL of this service as players reach it (through the gateway), for the
    # playback URLs. Required outside development, where empty gives URLs relative
    # to the gateway; never taken from the request's Host.
    public_base_url: str | None = Field(
        default=None, pattern=r"^(https?://[^/?#\s]+(/[^?#\s]*)?)?$"
    )
    # Segments: "stream" through this service (Range supported), or "redirect"
    # to a presigned S3 GET. Playlists are always served here, so relative
    # links keep the token.
    hls_segment_delivery: Literal["stream", "redirect"] = "stream"
    # Only when players reach this service directly: the gateway/Ingress sets CORS otherwise.
    hls_cors_allow_origin: str | None = None
    # Answer the gateway's token check (ADR 8) before routing (studio_media.api.edge).
    hls_edge_fast_path: bool = True
    # One access-log line per HLS file served; off by default: the gateway logs
    # every request, the request metrics count them, failures are always logged.
    log_hls_requests: bool = False
    # Assets registered as public get a plain CDN URL in cdn mode.
    assets_public_by_default: bool = False
    # A folder no longer served (an older transcode, a failed attempt) is deleted
    # this long after, so players holding its URL finish; empty = the URL lifetime.
    hls_retire_grace_seconds: int | None = Field(default=None, ge=0)
    # How often retired folders are looked for; 0 switches the sweep off here.
    hls_sweep_interval_seconds: float = Field(default=300.0, ge=0)
    # How often every ready episode's master playlist is looked for in storage
    # (the first time shortly after start); one that is gone is announced as not
    # playable (studio_media.service.presence). 0 switches the check off here.
    hls_presence_check_interval_seconds: float = Field(default=600.0, ge=0)

    # --- CDN (playback_mode=cdn) ----------------------------------------
    cdn_base_url: str | None = None
    cdn_key_pair_id: str | None = None
    cdn_private_key: str | None = None  # PEM
    cdn_private_key_file: str | None = None
    cdn_cookie_domain: str | None = None

    @model_validator(mode="after")
    def _signing_key(self) -> MediaSettings:
        if not self.playback_signing_key:
            if self.development:
                self.playback_signing_key = _DEV_SIGNING_KEY
        elif len(self.playback_signing_key) < 32:
            raise ValueError("MEDIA_PLAYBACK_SIGNING_KEY must be at least 32 characters")
        if self.playback_mode == "cdn" and not (
            self.cdn_base_url
            and self.cdn_key_pair_id
            and (self.cdn_private_key or self.cdn_private_key_file)
        ):
            raise ValueError(
                "cdn mode needs MEDIA_CDN_BASE_URL, MEDIA_CDN_KEY_PAIR_ID and a private key"
            )
        return self

    def startup_problems(self) -> list[str]:
        problems = super().startup_problems()
        if not self.playback_signing_key:
            problems.append("MEDIA_PLAYBACK_SIGNING_KEY is required outside development")
        if not (self.development or self.public_base_url) and self.playback_mode == "token":
            problems.append(
                "MEDIA_PUBLIC_BASE_URL is required outside development: playback URLs "
                "are built from it, never from the request's Host"
            )
        return problems

    @property
    def hls_retire_grace(self) -> int:
        if self.hls_retire_grace_seconds is None:
            return self.playback_url_ttl_seconds
        return self.hls_retire_grace_seconds

    @property
    def signing_key_generated(self) -> bool:
        return self.playback_signing_key == _DEV_SIGNING_KEY

    def signing_keys(self) -> list[bytes]:
        return [
            k.encode() for k in (self.playback_signing_key, *self.playback_previous_signing_keys)
        ]
