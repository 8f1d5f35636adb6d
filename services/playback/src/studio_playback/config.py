from pydantic import Field
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class PlaybackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PLAYBACK_", extra="ignore")

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
    # Position writes that arrive together are saved with one statement: at
    # most this many per batch (1 = every write alone) ...
    positions_batch_size: int = Field(default=128, ge=1, le=1000)
    # ... with at most this many batches in flight at once ...
    positions_concurrent_batches: int = Field(default=4, ge=1, le=100)
    # ... and at most this many writes waiting (more are refused with 429).
    positions_max_pending: int = Field(default=10_000, ge=1)
    # One access-log line per successful position write (heartbeats); off by
    # default: the request metrics count them, failures are always logged.
    log_position_writes: bool = False
    # Answer POST /api/playback before routing (see studio_playback.api.fastpath).
    positions_fast_path: bool = True

    def database_connections(self) -> int:
        """The shared pools plus the position writers' own."""
        return super().database_connections() + self.positions_pool_size
