from pydantic import Field
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class PlaybackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PLAYBACK_", extra="ignore")

    max_page_size: int = Field(default=100, ge=1, le=500)
    # A position at or past this fraction of the episode marks it watched, and
    # continue-watching then offers the next episode.
    watched_fraction: float = Field(default=0.9, gt=0, le=1)
    # Position writes bypass the ORM and run on their own asyncpg pool.
    positions_pool_size: int = Field(default=10, ge=1, le=200)
    # Verified bearer tokens are remembered (until they expire, at most this
    # long) so a player's heartbeats do not pay for an RSA verification each.
    # 0 entries turns the cache off.
    token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    token_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
