from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class PlaybackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PLAYBACK_", extra="ignore")
