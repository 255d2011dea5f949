"""The aggregator's settings: where it listens, how it consumes, and every disclosure threshold."""

from __future__ import annotations

import datetime as dt
import logging

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared import privacy
from shared.settings import CommonSettings

from .disclosure import DisclosurePolicy

__all__ = ["AggregatorSettings"]

log = logging.getLogger(__name__)


class AggregatorSettings(CommonSettings):
    """`AGGREGATOR_*` environment variables (and `.local/stack.env`); defaults are docs/privacy.md's."""

    model_config = SettingsConfigDict(env_prefix="AGGREGATOR_", env_file=".local/stack.env", extra="ignore")

    host: str = Field("127.0.0.1", title="HTTP bind address")
    port: int = Field(8002, title="HTTP port", ge=1, le=65535)
    operator_token: SecretStr | None = Field(
        None,
        title="Operator bearer token",
        description="Required by /v1/audit/withheld and /v1/releases; unset, they refuse everyone.",
    )

    group_id: str = Field(
        "aggregator",
        title="Kafka consumer group",
        description="Replicas share partitions through this group.",
    )
    batch_max_records: int = Field(
        # Measured with kept place counts (quiet machine, same broker, one run each): 20k gives
        # 52k ev/s on a 100k backlog (3.4x Quix Streams) and 35 s for 1M; 30k 49k ev/s (3.1x) and
        # 31 s; 50k 24k ev/s (1.6x) and 27 s. Larger batches pipeline worse on a short backlog.
        30_000,
        title="Most records applied in one transaction",
        ge=1,
        le=50_000,
        description="Batches are as large as what has been fetched: small when keeping up, this large "
        "when catching up, where one transaction per many records is what makes replay fast.",
    )
    batch_timeout_ms: int = Field(500, title="Longest wait for a batch to fill", ge=1)
    parallel_batches: int = Field(
        2,
        title="Batches applied at once (lanes of partitions)",
        ge=1,
        le=16,
        description="Each lane commits in order; lanes' transactions overlap, so PostgreSQL works on "
        "several cores while this process parses the next records.",
    )
    catchup_publish_seconds: float = Field(
        30.0,
        title="Longest a catch-up holds back the place view",
        ge=0,
        description="While a lane is far behind (at least a full batch waiting behind the one being "
        "applied), its batches fold without refreshing the place view; the lane's next batch after "
        "this long, or the last of the backlog, recounts and publishes what they changed. 0: every "
        "batch publishes.",
    )
    replay_from: dt.datetime | None = Field(
        None,
        title="Replay start for partitions with no stored position",
        description="Unset (the default): the beginning of the topic, which rebuilds the full state. "
        "Set only for tests or a deliberate partial rebuild: earlier events are then never counted.",
    )
    refresh_interval_seconds: float = Field(
        60.0,
        title="Place view refresh interval",
        gt=0,
        description="How often each place area's expiries and sliding trends are re-evaluated without"
        " new events (a twelfth of the areas at a time, spread over the interval).",
    )
    release_check_interval_seconds: float = Field(3600.0, title="Monthly release check interval", gt=0)
    purge_interval_seconds: float = Field(
        86400.0, title="Pseudonym purge interval", gt=0, description="docs/privacy.md, retention; daily."
    )
    purge_first_delay_seconds: float = Field(60.0, title="First pseudonym purge after start", ge=0)
    outbox_interval_seconds: float = Field(
        2.0,
        title="Outbox relay fallback poll interval",
        gt=0,
        description="The relay wakes on commit (NOTIFY and in-process); this only bounds a missed wake-up.",
    )
    outbox_batch: int = Field(500, title="Outbox rows relayed per round", ge=1)
    trend_days: int = Field(30, title="Place trend window (days): this window against the one before", ge=1)

    min_subjects: int = Field(privacy.MIN_SUBJECTS, title="Rule 4: smallest noisy count shown")
    min_unit_addresses: int = Field(
        privacy.MIN_UNIT_ADDRESSES, title="Rule 3: addresses per person publication unit"
    )
    min_street_addresses: int = Field(
        privacy.MIN_STREET_ADDRESSES, title="Rule 2: addresses for a street to publish alone"
    )
    rounding_base: int = Field(privacy.ROUNDING_BASE, title="Rule 4: rounding base of internal counts")
    several_from: int = Field(privacy.SEVERAL_FROM, title="Rule 4: lowest count of the 'several' band")
    many_from: int = Field(privacy.MANY_FROM, title="Rule 4: lowest count of the 'many' band")
    epsilon_per_release: float = Field(
        privacy.EPSILON_PER_RELEASE, title="Rule 6: epsilon per subject per monthly release"
    )
    annual_epsilon_cap: float = Field(
        privacy.ANNUAL_EPSILON_CAP, title="Rule 6: epsilon per subject per calendar year"
    )
    noise: bool = Field(True, title="Rule 6: add noise (off only in tests and demonstrations)")
    ward_aggregates: bool = Field(True, title="Rule 7: keep ward totals (with secondary suppression)")
    release_delay_days: int = Field(0, title="Rule 5: days after a month ends before its release")
    allow_weaker_than_policy: bool = Field(
        False,
        title="Allow privacy settings weaker than docs/privacy.md",
        description="Only for tests and demonstrations: without it the aggregator refuses to start with "
        "noise off, a threshold or unit floor below the policy's, or a larger epsilon; with it, it "
        "starts and logs a warning naming each weaker setting.",
    )

    @model_validator(mode="after")
    def _valid_policy(self) -> AggregatorSettings:
        try:
            self.policy()
        except ValueError as exc:
            raise ValueError(f"AGGREGATOR_ disclosure settings are inconsistent: {exc}") from None
        if self.replay_from is not None and self.replay_from.tzinfo is None:
            raise ValueError("AGGREGATOR_REPLAY_FROM needs a timezone")
        weaker = self.weaker_than_policy()
        if weaker and not self.allow_weaker_than_policy:
            raise ValueError(
                "privacy settings weaker than docs/privacy.md: "
                + "; ".join(weaker)
                + " (set AGGREGATOR_ALLOW_WEAKER_THAN_POLICY=true only for tests and demonstrations)"
            )
        if weaker:
            log.warning(
                "PRIVACY SETTINGS WEAKER THAN POLICY (tests/demonstrations only): %s", "; ".join(weaker)
            )
        return self

    def weaker_than_policy(self) -> list[str]:
        """Each setting that protects less than shared/privacy.py's figure, named as its variable."""
        floors = (
            ("MIN_SUBJECTS", self.min_subjects, privacy.MIN_SUBJECTS),
            ("MIN_UNIT_ADDRESSES", self.min_unit_addresses, privacy.MIN_UNIT_ADDRESSES),
            ("MIN_STREET_ADDRESSES", self.min_street_addresses, privacy.MIN_STREET_ADDRESSES),
            ("ROUNDING_BASE", self.rounding_base, privacy.ROUNDING_BASE),
        )
        out = [f"AGGREGATOR_{n}={v} < {floor}" for n, v, floor in floors if v < floor]
        ceilings = (
            ("EPSILON_PER_RELEASE", self.epsilon_per_release, privacy.EPSILON_PER_RELEASE),
            ("ANNUAL_EPSILON_CAP", self.annual_epsilon_cap, privacy.ANNUAL_EPSILON_CAP),
        )
        out += [f"AGGREGATOR_{n}={v} > {ceiling}" for n, v, ceiling in ceilings if v > ceiling]
        if not self.noise:
            out.append("AGGREGATOR_NOISE=false")
        return out

    def policy(self) -> DisclosurePolicy:
        """The disclosure policy these settings describe."""
        return DisclosurePolicy(
            min_subjects=self.min_subjects,
            min_unit_addresses=self.min_unit_addresses,
            min_street_addresses=self.min_street_addresses,
            rounding_base=self.rounding_base,
            several_from=self.several_from,
            many_from=self.many_from,
            epsilon_per_release=self.epsilon_per_release,
            annual_epsilon_cap=self.annual_epsilon_cap,
            noise=self.noise,
            ward_aggregates=self.ward_aggregates,
            release_delay_days=self.release_delay_days,
        )
