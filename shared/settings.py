"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings", "KafkaSaslMechanism", "KafkaSecurityProtocol"]

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class CommonSettings(BaseSettings):
    """Where the broker and database are, and how to reach the broker securely.

    Read from the environment (and `.local/stack.env`). `DATABASE_URL` and the `KAFKA_*` settings are
    shared by every service and carry no prefix; a service's own settings use its prefix (e.g. `INGEST_PORT`).
    """

    model_config = SettingsConfigDict(env_file=".local/stack.env", extra="ignore")

    database_url: str = Field(
        ...,
        title="PostgreSQL URL",
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="e.g. postgresql://streetneeds@127.0.0.1:54329/streetneeds",
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
    log_level: str = Field("INFO", title="Log level", validation_alias=AliasChoices("LOG_LEVEL", "log_level"))

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
