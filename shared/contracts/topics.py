"""The topic registry: each topic's name, contract, key, partitions, retention and compaction.

Topic creation (`streetneeds topics create`), the AsyncAPI document and the services all read this
registry, so a topic is declared exactly once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from .events import (
    CouncilSignal,
    DeadLettered,
    PromptEvent,
    ResidentResponded,
    SignalAnonymised,
    StreetNeedChanged,
)

__all__ = [
    "ALL_TOPICS",
    "COUNCIL_SIGNALS",
    "DEAD_LETTERS",
    "PROMPTS",
    "RESIDENT_RESPONSES",
    "SIGNALS_ANONYMISED",
    "STREET_NEEDS",
    "Topic",
]

DAY_MS = 24 * 60 * 60 * 1000

# Namespaces every topic, e.g. `camden.` when several deployments share one Kafka cluster, or a
# random prefix per test run so that tests never read each other's events. Read once at start-up.
TOPIC_PREFIX = os.environ.get("STREETNEEDS_TOPIC_PREFIX", "")


@dataclass(frozen=True)
class Topic:
    base_name: str  # the name in the contract; `name` adds the deployment's prefix
    model: Any  # a pydantic model, or an annotated union of models (prompts)
    key: str  # what the Kafka key is, in words
    partitions: int
    retention_ms: int  # -1: keep forever
    compacted: bool = False
    audience: str = ""
    description: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{TOPIC_PREFIX}{self.base_name}"

    def config(self) -> dict[str, str]:
        """Kafka topic configs for creation."""
        cfg = {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": "compact" if self.compacted else "delete",
        }
        cfg.update(self.extra_config)
        return cfg

    def json_schema(self) -> dict[str, Any]:
        return TypeAdapter(self.model).json_schema()


COUNCIL_SIGNALS = Topic(
    "council-signals.v1",
    CouncilSignal,
    key="council event_id",
    partitions=3,
    retention_ms=1 * DAY_MS,
    audience="council systems produce; only ingest consumes",
    description="Raw council signals (personal data). Short retention.",
)
SIGNALS_ANONYMISED = Topic(
    "signals-anonymised.v1",
    SignalAnonymised,
    key="street_id",
    partitions=6,
    retention_ms=400 * DAY_MS,
    audience="ingest produces; only the aggregator consumes",
    description="Signals after anonymisation at the door. Kept 400 days (longer than any "
    "category lifetime plus the privacy ledger's year) so the aggregator can rebuild by replay.",
)
STREET_NEEDS = Topic(
    "street-needs.v1",
    StreetNeedChanged,
    key="{area_id}:{category}",
    partitions=6,
    retention_ms=-1,
    compacted=True,
    audience="aggregator produces; prompter and VCS partners (own consumer groups) consume",
    description="Publishable street-level needs; a tombstone when no longer publishable.",
    extra_config={"min.compaction.lag.ms": str(60 * 60 * 1000)},
)
PROMPTS = Topic(
    "prompts.v1",
    PromptEvent,
    key="prompt_id",
    partitions=6,
    retention_ms=-1,
    compacted=True,
    audience="prompter produces; feeds consumes",
    description="Prompts for action (PromptPublished or PromptRetired, by `event_type`).",
)
RESIDENT_RESPONSES = Topic(
    "resident-responses.v1",
    ResidentResponded,
    key="prompt_id",
    partitions=3,
    retention_ms=400 * DAY_MS,
    audience="feeds produces; prompter and operators consume",
    description="Anonymous 'I can help' responses to prompts.",
)
DEAD_LETTERS = Topic(
    "dead-letters.v1",
    DeadLettered,
    key="source topic",
    partitions=1,
    retention_ms=7 * DAY_MS,
    audience="operators only",
    description="Input that could not be accepted, with reason and bytes.",
)

ALL_TOPICS: tuple[Topic, ...] = (
    COUNCIL_SIGNALS,
    SIGNALS_ANONYMISED,
    STREET_NEEDS,
    PROMPTS,
    RESIDENT_RESPONSES,
    DEAD_LETTERS,
)
