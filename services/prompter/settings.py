"""The prompter's settings (env prefix `PROMPTER_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings

__all__ = ["PrompterSettings"]


class PrompterSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="PROMPTER_", env_file=".local/stack.env", extra="ignore")

    host: str = Field("127.0.0.1", title="HTTP bind address")
    port: int = Field(8003, title="HTTP port", ge=1, le=65535)
    group_id: str = Field(
        "prompter",
        title="Kafka consumer group",
        description="Consumer group for street-needs and resident-responses. "
        "Tests set a random one to read the topics afresh.",
        min_length=1,
    )
    admin_token: SecretStr | None = Field(
        None,
        title="Partner/council Bearer token",
        description="Required for writing opportunities and reading impact. Unset: those endpoints "
        "answer 403. A stop-gap until per-partner credentials exist.",
    )
    reconcile_interval_s: float = Field(
        3600.0,
        title="Reconcile interval (seconds)",
        gt=0,
        description="How often every active prompt is re-evaluated (opportunities start and end by "
        "date; a crash may have interrupted a re-evaluation).",
    )

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("PROMPTER_ADMIN_TOKEN must be at least 16 characters (use a random value)")
        return token
