"""The prompter's settings (env prefix `PROMPTER_`)."""

from __future__ import annotations

import re

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
        title="Operator Bearer token",
        description="Lets the operator read every organisation's changes and impact, and manage the "
        "platforms directory (as a council admin organisation can). Opportunities are written only "
        "with organisations' own keys. Unset: only council admin organisations can.",
    )
    base_url: str = Field(
        "http://127.0.0.1:8003",
        title="Public base URL",
        description="Where residents and organisations reach the prompter's pages (offers form, "
        "organisations' pages, impact pages). An https URL makes the session cookie Secure.",
    )
    feeds_url: str = Field(
        "http://127.0.0.1:8000",
        title="Residents' pages URL",
        description="The feeds service's public URL, for links back to prompts and streets.",
    )
    offer_retention_days: int = Field(
        30,
        title="Days a resident's contact details are kept",
        ge=1,
        le=30,
        description="Unhanded offers of help are deleted after this (at most 30, the privacy promise).",
    )
    purge_interval_s: float = Field(3600.0, title="Interval of the offers purge (seconds)", gt=0)
    offers_per_minute: float = Field(2.0, title="Residents' offers of contact per client per minute", gt=0)
    offers_burst: int = Field(5, title="Offers of contact burst per client", ge=1)
    session_hours: float = Field(8.0, title="Organisations' web sign-in lasts (hours)", gt=0, le=24 * 7)
    reconcile_interval_s: float = Field(
        3600.0,
        title="Reconcile interval (seconds)",
        gt=0,
        description="How often every active prompt is re-evaluated (opportunities start and end by "
        "date; a crash may have interrupted a re-evaluation).",
    )

    @field_validator("base_url", "feeds_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an absolute http(s) URL, e.g. https://help.example.org")
        return value.rstrip("/")

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("PROMPTER_ADMIN_TOKEN must be at least 16 characters (use a random value)")
        return token
