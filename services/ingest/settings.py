"""Ingest settings (env prefix `INGEST_`): listen address, pseudonymisation secrets, limits."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.gazetteer.snapping import DEFAULT_MAX_DISTANCE_M
from shared.settings import CommonSettings

__all__ = ["MIN_SECRET_LENGTH", "IngestSettings", "parse_pseudonym_keys"]

MIN_SECRET_LENGTH = 32


def parse_pseudonym_keys(raw: str) -> dict[int, SecretStr]:
    """`"1:secret,2:secret2"` -> {1: secret, 2: secret2}; every secret at least 32 characters."""
    keys: dict[int, SecretStr] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        version, sep, secret = part.partition(":")
        if not sep or not version.strip().isdigit() or int(version) < 1:
            raise ValueError("INGEST_PSEUDONYM_KEYS must look like '1:<secret>,2:<secret>' (versions >= 1)")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"INGEST_PSEUDONYM_KEYS: the secret of version {int(version)} is shorter "
                f"than {MIN_SECRET_LENGTH} characters"
            )
        if int(version) in keys:
            raise ValueError(f"INGEST_PSEUDONYM_KEYS: version {int(version)} is given twice")
        keys[int(version)] = SecretStr(secret)
    if not keys:
        raise ValueError("INGEST_PSEUDONYM_KEYS is empty")
    return keys


class IngestSettings(CommonSettings):
    """Ingest's own settings; secrets are SecretStr and the service refuses to start without them."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", env_file=".local/stack.env", extra="ignore")

    host: str = Field("127.0.0.1", title="Listen address")
    port: int = Field(8001, title="HTTP port", ge=1, le=65535)
    pseudonym_keys: SecretStr = Field(
        ...,
        title="Pseudonymisation secrets",
        description="Versioned HMAC secrets, `1:<secret>,2:<secret>`, each at least 32 characters. "
        "Old versions stay listed so that rotation is explicit.",
    )
    pseudonym_key_version: int = Field(..., title="Pseudonymisation secret in use", ge=1)
    max_batch: int = Field(5000, title="Largest batch accepted in one request", ge=1000)
    rate_per_minute: int = Field(
        600,
        title="Default rate limit",
        description="Requests per minute per council system (token bucket) unless the system has its own.",
        ge=1,
    )
    max_distance_m: float = Field(
        DEFAULT_MAX_DISTANCE_M, title="Furthest a point may be from a street (metres)", gt=0
    )
    consumer_group: str = Field(
        "ingest",
        title="Kafka consumer group for council-signals",
        description="Keep the default in production; tests use their own group.",
    )
    agency_responsible: str = Field("London Borough of Camden", title="Open311 agency_responsible")
    service_notice: str = Field(
        "Thank you. Your report is shared, without personal details, as a street-level need.",
        title="Open311 service_notice",
    )
    operator_token: SecretStr | None = Field(
        None,
        title="Operator bearer token",
        description="Required by the operators' API under /v1/admin (the console); "
        "unset, it refuses everyone.",
    )

    @field_validator("pseudonym_keys")
    @classmethod
    def _keys_well_formed(cls, value: SecretStr) -> SecretStr:
        parse_pseudonym_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _version_known(self) -> IngestSettings:
        if self.pseudonym_key_version not in self.pseudonym_keys_by_version:
            raise ValueError(
                f"INGEST_PSEUDONYM_KEY_VERSION={self.pseudonym_key_version} is not among "
                "the versions in INGEST_PSEUDONYM_KEYS"
            )
        return self

    @property
    def pseudonym_keys_by_version(self) -> dict[int, SecretStr]:
        return parse_pseudonym_keys(self.pseudonym_keys.get_secret_value())
