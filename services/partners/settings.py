"""Partner service settings (env prefix `PARTNERS_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings

__all__ = ["PartnersSettings"]


class PartnersSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERS_", env_file=".local/stack.env", extra="ignore")

    host: str = Field("127.0.0.1", title="HTTP bind address")
    port: int = Field(8004, title="HTTP port", ge=1, le=65535)
    group_id: str = Field("partners", title="Kafka consumer group for street-needs.v1", min_length=1)
    poll_rest_ms: int = Field(
        250,
        title="Least time between two polls of street-needs.v1 while keeping up (milliseconds)",
        ge=0,
        le=5_000,
        description="Webhooks are off the live path: a lone change is still stored and delivered at "
        "once, but under load the service stores changes in fewer, larger transactions and leaves the "
        "CPU to the services residents wait on. 0 polls again at once.",
    )
    page_size_max: int = Field(1000, title="Largest page a partner may ask for", ge=1)
    webhook_max_attempts: int = Field(
        8, title="Delivery attempts before a webhook delivery is dead-lettered", ge=1
    )
    webhook_backoff_base_s: float = Field(
        60.0, title="First retry delay in seconds (doubles per attempt, with jitter)", gt=0
    )
    webhook_backoff_cap_s: float = Field(6 * 3600.0, title="Longest retry delay in seconds", gt=0)
    webhook_timeout_s: float = Field(
        5.0,
        title="Total deadline of one webhook delivery in seconds",
        description="Resolving, connecting, sending and reading the answer together.",
        gt=0,
    )
    webhook_max_response_bytes: int = Field(
        16 * 1024, title="Most bytes of a receiver's answer read before the connection is closed", ge=1
    )
    webhook_partner_concurrency: int = Field(
        8, title="Deliveries in flight at once per partner (and keep-alive connections per host)", ge=1
    )
    webhook_poll_interval_s: float = Field(
        1.0, title="How often an idle delivery worker looks for due deliveries, in seconds", gt=0
    )
    webhook_batch_size: int = Field(50, title="Deliveries one worker claims at a time", ge=1)
    webhook_replay_max_days: int = Field(
        30, title="How far back a webhook replay may reach, in days", ge=1, le=366
    )
    webhook_replay_max_rows: int = Field(
        20_000, title="Most changes one webhook replay may queue (narrow the window beyond)", ge=1
    )
    webhook_replay_per_hour: float = Field(
        6, title="Webhook replays a partner may ask for per hour (a burst of that many)", gt=0
    )
    webhook_allow_loopback: bool = Field(
        False, title="Allow webhook URLs on loopback/private addresses (tests and local dev only)"
    )
    webhook_require_https: bool = Field(
        False, title="Accept only https:// webhook URLs (turn on in production)"
    )
    load_gazetteer: bool = Field(
        True, title="Load the gazetteer at start-up for GeoJSON geometry and bbox filtering"
    )
    operator_token: SecretStr | None = Field(
        None,
        title="Operator bearer token",
        description="Required by the operators' API under /v1/admin (the console); "
        "unset, it refuses everyone.",
    )

    @model_validator(mode="after")
    def _sane_backoff(self) -> PartnersSettings:
        if self.webhook_backoff_cap_s < self.webhook_backoff_base_s:
            raise ValueError("PARTNERS_WEBHOOK_BACKOFF_CAP_S must be >= PARTNERS_WEBHOOK_BACKOFF_BASE_S")
        return self
