from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class TranscoderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRANSCODER_", extra="ignore")
