from studio_catalog.config import CatalogSettings
from studio_catalog.models import SCHEMA, metadata
from studio_common.migrations import run_env

run_env(target_metadata=metadata, schema=SCHEMA, settings_url=CatalogSettings().database_url)
