"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MIN_TOKEN_LENGTH", "CommonSettings", "KafkaSaslMechanism", "KafkaSecurityProtocol", "placeholder"]

# Operator and admin tokens guard whole APIs: shorter ones can be guessed.
MIN_TOKEN_LENGTH = 20
# Values copied from examples and never replaced: a deployment must not start with them.
_PLACEHOLDER = re.compile(
    r"change[-_ ]?me|replace[-_ ]?me|example|placeholder|your[-_ ]|<[^>]*>|^(secret|password|passwd|token|"
    r"test|default|admin|1234\d*)$",
    re.IGNORECASE,
)


def placeholder(value: str) -> bool:
    """True for a secret copied from an example (`change-me…`, `changeme`, `secret`, `example`…)."""
    return bool(_PLACEHOLDER.search(value.strip()))


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class CommonSettings(BaseSettings):
    """Where the broker and database are, and how to reach the broker securely.

    Read from the environment (and `.local/stack.env`). `DATABASE_URL` and the `KAFKA_*` settings are
    shared by every service and carry no prefix; a service's own settings use its prefix (e.g. `INGEST_PORT`).
    """

    model_config = SettingsConfigDict(env_file=".local/stack.env", extra="ignore")

    database_url: SecretStr = Field(
        ...,
        title="PostgreSQL URL",
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="e.g. postgresql://streetneeds@127.0.0.1:54329/streetneeds. The administrator's URL "
        "(migrations, setup); a service connects with `<SERVICE>_DATABASE_URL` (its own role) when set.",
    )
    service_database_url: SecretStr | None = Field(
        None,
        title="The service's own PostgreSQL URL",
        validation_alias=AliasChoices("service_database_url"),
        description="Read from `<SERVICE>_DATABASE_URL` (e.g. FEEDS_DATABASE_URL): the service's own "
        "role, limited to its schema and read-only on the gazetteer (created by `streetneeds migrate`).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        title="Metrics token",
        validation_alias=AliasChoices("METRICS_TOKEN", "metrics_token"),
        description="`/metrics` answers only `Authorization: Bearer <token>`; unset, only loopback clients.",
    )
    trusted_proxies: str = Field(
        "",
        title="Trusted proxies",
        validation_alias=AliasChoices("TRUSTED_PROXIES", "trusted_proxies"),
        description="Comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For is believed "
        "(rate limits, connection caps). Empty: the connecting address is the client.",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        title="Largest request body",
        ge=1024,
        validation_alias=AliasChoices("MAX_BODY_BYTES", "max_body_bytes"),
        description="Default limit for every route (413 beyond it); some routes set their own.",
    )
    kafka_bootstrap_servers: str = Field(
        ...,
        title="Kafka bootstrap servers",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Comma-separated host:port list, e.g. 127.0.0.1:19092",
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT",
        title="Kafka security protocol",
        validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL", "kafka_security_protocol"),
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. The SASL_* protocols need "
        "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD.",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        None,
        title="Kafka SASL mechanism",
        validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "kafka_sasl_mechanism"),
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols only).",
    )
    kafka_sasl_username: str | None = Field(
        None,
        title="Kafka SASL username",
        validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "kafka_sasl_username"),
        description="SASL_* protocols only.",
    )
    kafka_sasl_password: SecretStr | None = Field(
        None,
        title="Kafka SASL password",
        validation_alias=AliasChoices("KAFKA_SASL_PASSWORD", "kafka_sasl_password"),
        description="SASL_* protocols only.",
    )
    kafka_ssl_cafile: FilePath | None = Field(
        None,
        title="Kafka CA file",
        validation_alias=AliasChoices("KAFKA_SSL_CAFILE", "kafka_ssl_cafile"),
        description="PEM file of the CA that signed the brokers' certificates (SSL and SASL_SSL only; "
        "default: the system's CAs).",
    )
    kafka_batch_max_records: int = Field(
        500,
        title="Records applied per transaction on a busy topic (at most)",
        ge=1,
        le=10_000,
        validation_alias=AliasChoices("KAFKA_BATCH_MAX_RECORDS", "kafka_batch_max_records"),
        description="The prompter (street-needs) and the feeds and notifier (prompts) apply each poll "
        "of their input in one transaction, with one offset commit: a poll returns as soon as records "
        "are there, so an idle consumer applies a lone record at once, and a busy one up to this many.",
    )
    log_level: str = Field("INFO", title="Log level", validation_alias=AliasChoices("LOG_LEVEL", "log_level"))

    @model_validator(mode="before")
    @classmethod
    def _own_database_url(cls, data: Any) -> Any:
        """`<PREFIX>DATABASE_URL` names the service's own role; DATABASE_URL stays the default."""
        prefix = cls.model_config.get("env_prefix") or ""
        if prefix and isinstance(data, dict) and not data.get("service_database_url"):
            if own := os.environ.get(f"{prefix}DATABASE_URL"):
                data = {**data, "service_database_url": own}
        return data

    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(p.strip(), strict=False)
            for p in self.trusted_proxies.split(",")
            if p.strip()
        ]

    def database_dsn(self) -> str:
        """The URL this process connects with: its own role's if given, else DATABASE_URL."""
        return (self.service_database_url or self.database_url).get_secret_value()

    @model_validator(mode="after")
    def _proxies_are_networks(self) -> Self:
        try:
            self.trusted_proxy_networks()
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        """Refuse to start with secrets copied from an example, or tokens short enough to guess."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not isinstance(value, SecretStr):
                continue
            secret = value.get_secret_value()
            if name.endswith("database_url"):
                secret = urlsplit(secret).password or ""
                if not secret:
                    continue
            if placeholder(secret):
                raise ValueError(f"{name} is a placeholder (e.g. 'change-me'): set a real secret")
            if name.endswith("token") and len(secret) < MIN_TOKEN_LENGTH:
                raise ValueError(f"{name} must be at least {MIN_TOKEN_LENGTH} characters")
        return self

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        """Half-configured security would connect without it, or not at all: refuse to start instead."""
        protocol = self.kafka_security_protocol
        sasl = {
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        if protocol.startswith("SASL_"):
            if missing := [name for name, value in sasl.items() if not value]:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        elif given := [name for name, value in sasl.items() if value]:
            raise ValueError(
                f"{', '.join(given)} given but KAFKA_SECURITY_PROTOCOL={protocol} does not use "
                "SASL; set it to SASL_PLAINTEXT or SASL_SSL"
            )
        if self.kafka_ssl_cafile is not None and not protocol.endswith("SSL"):
            raise ValueError(
                f"KAFKA_SSL_CAFILE given but KAFKA_SECURITY_PROTOCOL={protocol} does not use "
                "TLS; set it to SSL or SASL_SSL"
            )
        return self
