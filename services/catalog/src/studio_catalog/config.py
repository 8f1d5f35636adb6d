from pydantic import Field
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="ignore")

    # List totals count at most this many matches (then `totalCapped: true`).
    total_count_cap: int = Field(default=1_000, ge=1, le=1_000_000)
