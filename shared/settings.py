"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings"]


class CommonSettings(BaseSettings):
    """Where the broker and database are. Read from the environment (and `.local/stack.env`).

    `DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS` are shared by every service and carry no prefix;
    a service's own settings use its prefix (e.g. `INGEST_PORT`).
    """

    model_config = SettingsConfigDict(env_file=".local/stack.env", extra="ignore")

    database_url: str = Field(
        ..., title="PostgreSQL URL",
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="e.g. postgresql://streetneeds@127.0.0.1:54329/streetneeds",
    )
    kafka_bootstrap_servers: str = Field(
        ..., title="Kafka bootstrap servers",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Comma-separated host:port list, e.g. 127.0.0.1:19092",
    )
    log_level: str = Field("INFO", title="Log level",
                           validation_alias=AliasChoices("LOG_LEVEL", "log_level"))
