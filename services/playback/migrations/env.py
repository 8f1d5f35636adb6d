from studio_common.migrations import run_env
from studio_playback.config import PlaybackSettings
from studio_playback.models import SCHEMA, metadata

run_env(target_metadata=metadata, schema=SCHEMA, settings_url=PlaybackSettings().database_url)
