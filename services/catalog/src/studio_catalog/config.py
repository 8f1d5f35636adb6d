from pydantic import Field
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="ignore")

    # List totals count at most this many matches (then `totalCapped: true`).
    total_count_cap: int = Field(default=1_000, ge=1, le=1_000_000)
    # Creating an episode waits this long for media's verification of its source
    # to arrive (media.upload.verified), then refuses it; 0 does not wait.
    source_wait_seconds: float = Field(default=10.0, ge=0, le=60)
    # Anonymous public reads (title lists, a title's page, an episode) may be
    # cached this long by browsers and CDNs; 0 = not at all. Signed-in callers'
    # answers are never stored (studio_common.caching).
    public_cache_seconds: int = Field(default=15, ge=0, le=3600)
    # Answer GET /api/titles before routing (see studio_catalog.api.listing).
    list_fast_path: bool = True
    # Title lists and searches run on an asyncpg pool of their own, this large
    # (studio_catalog.reads).
    list_pool_size: int = Field(default=10, ge=1, le=200)

    def database_connections(self) -> int:
        """The shared pools plus the title lists' own."""
        return super().database_connections() + self.list_pool_size
