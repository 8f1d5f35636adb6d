from studio_common.migrations import run_env
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.models import SCHEMA, metadata

run_env(target_metadata=metadata, schema=SCHEMA, settings_url=TranscoderSettings().database_url)
