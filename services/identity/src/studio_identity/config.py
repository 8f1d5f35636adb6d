from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    # Development issuer (every environment except production): the private key
    # lives outside the repository, relative to the working directory.
    dev_key_path: Path = Path(".data/identity/jwt-key.pem")
    # How long a rotated-out public key stays in the JWKS; at least the longest
    # token lifetime, so tokens signed just before a rotation stay valid.
    dev_key_grace_seconds: int = Field(default=86_400, ge=0)
    dev_token_default_ttl_seconds: int = Field(default=3_600, ge=60)
    dev_token_max_ttl_seconds: int = Field(default=86_400, ge=60)
    # Tokens per client address and window (the route exists in development only,
    # and even there it must not mint admin tokens without bound).
    dev_token_rate_limit: int = Field(default=60, ge=1)
    dev_token_rate_window_seconds: int = Field(default=60, ge=1)

    # Clerk (production issuer). Required in production; elsewhere an empty
    # secret key keeps role changes local.
    clerk_secret_key: SecretStr = SecretStr("")
    clerk_api_url: str = "https://api.clerk.com/v1"
    clerk_timeout_seconds: float = Field(default=10.0, gt=0)
    # Svix signing secret of the Clerk webhook endpoint ("whsec_..."); empty:
    # webhooks are refused with 503.
    clerk_webhook_secret: SecretStr = SecretStr("")

    @property
    def dev_issuer_enabled(self) -> bool:
        return self.environment != "production"

    @property
    def clerk_write_back_required(self) -> bool:
        """Where Clerk issues the tokens, the role claim follows identity only through it."""
        return not self.dev_issuer_enabled

    @property
    def dev_token_route_enabled(self) -> bool:
        return self.environment == "development"
