"""Settings of the notifier (env prefix `NOTIFIER_`; DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS shared)."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings

__all__ = ["NotifierSettings"]

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class NotifierSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", env_file=".local/stack.env", extra="ignore")

    host: str = Field("127.0.0.1", title="HTTP bind address")
    port: int = Field(8005, title="HTTP port", ge=1, le=65535)
    group_id: str = Field("notifier", title="Kafka consumer group for prompts.v1", min_length=1)
    base_url: str = Field(
        "http://127.0.0.1:8005",
        title="Public base URL",
        description="Absolute URL residents reach this service at; every link in a mail starts with it.",
    )
    feeds_url: str = Field(
        "http://127.0.0.1:8000",
        title="Public URL of the feeds service",
        description="Mails link to prompts there.",
    )
    link_secret: SecretStr = Field(
        ...,
        title="Link secret",
        description="HMAC key (at least 32 characters) for manage/unsubscribe links and suppressed-address "
        "hashes. Changing it ends every link already mailed.",
    )
    webhook_token: SecretStr | None = Field(
        None,
        title="Bounce webhook token",
        description="Bearer token the mail provider sends to POST /v1/bounces; unset turns the endpoint off.",
    )
    smtp_host: str = Field(
        "127.0.0.1", title="SMTP host", description="Default: the local mail sink of `make run`."
    )
    smtp_port: int = Field(1025, title="SMTP port", ge=1, le=65535)
    smtp_tls: bool = Field(
        False, title="SMTP implicit TLS", description="TLS from the first byte (port 465)."
    )
    smtp_starttls: bool = Field(
        False, title="SMTP STARTTLS", description="Upgrade to TLS after connecting (587)."
    )
    smtp_username: str | None = Field(None, title="SMTP username")
    smtp_password: SecretStr | None = Field(None, title="SMTP password")
    smtp_timeout_s: float = Field(30.0, title="SMTP timeout (seconds)", gt=0)
    mail_from: str = Field(
        "streetneeds <alerts@streetneeds.localhost>", title="From address of every mail", min_length=3
    )
    mail_domain: str = Field(
        "streetneeds.localhost",
        title="Message-ID domain",
        description="Right-hand side of every Message-ID (the sending domain).",
    )
    unsubscribe_mailto: str = Field(
        "unsubscribe@streetneeds.localhost",
        title="Unsubscribe mailbox",
        description="The mailto: address in List-Unsubscribe (RFC 2369), next to the one-click URL.",
    )
    confirm_hours: int = Field(48, title="Hours a confirmation link works", ge=1, le=24 * 14)
    digest_hour: int = Field(7, title="Hour (Europe/London) daily and weekly digests go out", ge=0, le=23)
    digest_weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", title="Day weekly digests go out"
    )
    digest_check_s: float = Field(60.0, title="How often the digest schedule is checked (seconds)", gt=0)
    sender_workers: int = Field(4, title="Concurrent SMTP senders per replica", ge=1, le=64)
    sender_batch: int = Field(50, title="Outbox rows one sender claims at a time", ge=1, le=1000)
    sender_idle_s: float = Field(0.5, title="Sender poll interval when the outbox is empty (seconds)", gt=0)
    lease_s: float = Field(
        60.0,
        title="Claim lease (seconds)",
        description="A claimed row not marked sent within this is claimed again (its sender died).",
        gt=0,
    )
    max_attempts: int = Field(8, title="SMTP attempts before a mail is given up", ge=1)
    signup_rate_per_minute: float = Field(2.0, title="Sign-ups per client per minute (refill)", gt=0)
    signup_burst: int = Field(5, title="Sign-up burst per client", ge=1)
    signups_per_address_per_day: int = Field(5, title="Confirmation mails per address per day", ge=1)
    max_radius_m: int = Field(2000, title="Largest radius an alert may ask for (metres)", ge=50)
    poll_rest_ms: int = Field(
        250,
        title="Least time between two polls of prompts.v1 while keeping up (milliseconds)",
        ge=0,
        le=5_000,
        description="Mail is off the live path: a lone change is still applied at once, but under load "
        "the notifier stores changes in fewer, larger transactions and leaves the CPU to the services "
        "residents wait on. 0 polls again at once.",
    )
    retention_days: int = Field(
        30,
        title="Days sent-mail records are kept",
        description="Then only what prevents a repeat is kept.",
        ge=1,
    )

    @field_validator("base_url", "feeds_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an absolute http(s) URL, e.g. https://alerts.example.org")
        return value.rstrip("/")

    @field_validator("link_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("NOTIFIER_LINK_SECRET must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _smtp_is_coherent(self) -> Self:
        """Refuse at start what would fail (or leak a password) at the first mail."""
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("NOTIFIER_SMTP_TLS and NOTIFIER_SMTP_STARTTLS exclude each other: choose one")
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise ValueError("NOTIFIER_SMTP_USERNAME and NOTIFIER_SMTP_PASSWORD go together")
        if self.lease_s <= self.smtp_timeout_s:
            # A sender renews its lease just before each send; the send must end before the lease does.
            raise ValueError("NOTIFIER_LEASE_S must be longer than NOTIFIER_SMTP_TIMEOUT_S")
        secure = self.smtp_tls or self.smtp_starttls
        if self.smtp_username and not secure and self.smtp_host not in _LOCAL_HOSTS:
            raise ValueError(
                "SMTP authentication without TLS would send the password in clear: set "
                "NOTIFIER_SMTP_STARTTLS=true or NOTIFIER_SMTP_TLS=true"
            )
        return self
