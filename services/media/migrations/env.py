from studio_common.migrations import run_env
from studio_media.config import MediaSettings
from studio_media.models import SCHEMA, metadata

run_env(target_metadata=metadata, schema=SCHEMA, settings_url=MediaSettings().database_url)
