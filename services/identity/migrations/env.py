from studio_common.migrations import run_env
from studio_identity.config import IdentitySettings
from studio_identity.models import SCHEMA, metadata

run_env(target_metadata=metadata, schema=SCHEMA, settings_url=IdentitySettings().database_url)
