"""What media builds in its lifespan on top of the common runtime.

``create_app`` makes an empty :class:`MediaContext`; the startup hook fills it
(S3 clients, the Redis rate limiter, the CDN signer) and the routes and event
handlers read it. Nothing connects at import or at ``create_app`` time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from studio_common.app import context_dependency
from studio_media.cdn import CdnSigner
from studio_media.config import MediaSettings
from studio_media.ratelimit import Limit, RateLimiter
from studio_media.storage import MediaStorage
from studio_media.subtitles import ManifestCache


@dataclass
class MediaContext:
    settings: MediaSettings
    _storage: MediaStorage | None = None
    _limiter: RateLimiter | None = None
    cdn: CdnSigner | None = None
    limits: dict[str, Limit] = field(default_factory=dict)
    subtitle_manifests: ManifestCache = field(default_factory=ManifestCache)

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = {
            "presign": Limit("presign", s.presign_rate_limit, s.presign_rate_window_seconds),
            "playback": Limit("playback", s.playback_rate_limit, s.playback_rate_window_seconds),
        }

    def attach(
        self, storage: MediaStorage, limiter: RateLimiter, cdn: CdnSigner | None = None
    ) -> None:
        """Called once by the lifespan, when the clients exist."""
        self._storage, self._limiter, self.cdn = storage, limiter, cdn

    @property
    def storage(self) -> MediaStorage:
        if self._storage is None:
            raise RuntimeError("media storage is used before the app started")
        return self._storage

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            raise RuntimeError("the rate limiter is used before the app started")
        return self._limiter

    async def limit(self, name: str, subject: str) -> None:
        await self.limiter.hit(self.limits[name], subject)


ContextDep = Annotated[MediaContext, Depends(context_dependency(MediaContext))]
