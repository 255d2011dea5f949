"""Settings of the console (env prefix `CONSOLE_`): where the other services are and their operator tokens."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.registry import SERVICES
from shared.settings import CommonSettings

__all__ = ["TARGETS", "ConsoleSettings"]

# The services the console checks, from the registry (each has `<name>_url` below; some a `<name>_token`).
TARGETS = tuple(s.name for s in SERVICES if s.name != "console")


def _token(service: str, setting: str) -> SecretStr | None:
    return Field(
        None,
        title=f"Operator token for {service}",
        description=f"The same value as {setting}; unset, the console cannot act on {service}.",
    )


class ConsoleSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", env_file=".local/stack.env", extra="ignore")

    host: str = Field("127.0.0.1", title="HTTP bind address")
    port: int = Field(8006, title="HTTP port", ge=1, le=65535)
    base_url: str = Field(
        "http://127.0.0.1:8006",
        title="Public base URL",
        description="Where operators reach the console. With https:// its cookies are marked Secure.",
    )
    ingest_url: str = Field("http://127.0.0.1:8001", title="Ingest service URL")
    aggregator_url: str = Field("http://127.0.0.1:8002", title="Aggregator service URL")
    prompter_url: str = Field("http://127.0.0.1:8003", title="Prompter service URL")
    feeds_url: str = Field("http://127.0.0.1:8000", title="Feeds service URL")
    partners_url: str = Field("http://127.0.0.1:8004", title="Partners service URL")
    notifier_url: str = Field("http://127.0.0.1:8005", title="Notifier service URL (health only)")
    ingest_token: SecretStr | None = _token("ingest", "INGEST_OPERATOR_TOKEN")
    aggregator_token: SecretStr | None = _token("aggregator", "AGGREGATOR_OPERATOR_TOKEN")
    prompter_token: SecretStr | None = _token("prompter", "PROMPTER_ADMIN_TOKEN")
    partners_token: SecretStr | None = _token("partners", "PARTNERS_OPERATOR_TOKEN")
    session_idle_minutes: int = Field(30, title="A session ends after this long without a request", ge=1)
    session_absolute_hours: int = Field(12, title="A session ends this long after sign-in", ge=1, le=72)
    request_timeout_s: float = Field(10.0, title="Timeout of one call to another service (seconds)", gt=0)
    sign_in_attempts: int = Field(
        5, title="Failed sign-ins per user name in 15 minutes before sign-in is refused", ge=1
    )

    @field_validator(
        "base_url",
        "ingest_url",
        "aggregator_url",
        "prompter_url",
        "feeds_url",
        "partners_url",
        "notifier_url",
    )
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("console URLs must be absolute http(s) URLs, e.g. https://console.example.org")
        return value.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def url(self, target: str) -> str:
        """A service's URL: its setting, or (a service added to the registry since) its local port."""
        found = getattr(self, f"{target}_url", None)
        return found or f"http://127.0.0.1:{next(s.port for s in SERVICES if s.name == target)}"

    def token(self, target: str) -> SecretStr | None:
        return getattr(self, f"{target}_token", None)
