"""The topic registry: each topic's name, contract, key, partitions, retention and compaction.

Topic creation (`streetneeds topics create`), the AsyncAPI document and the services all read this
registry, so a topic is declared exactly once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .categories import Category
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
    "ContractError",
    "Tombstone",
    "Topic",
]

DAY_MS = 24 * 60 * 60 * 1000

# Namespaces every topic, e.g. `camden.` when several deployments share one Kafka cluster, or a
# random prefix per test run so that tests never read each other's events. Read once at start-up.
TOPIC_PREFIX = os.environ.get("STREETNEEDS_TOPIC_PREFIX", "")


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A record with no value on a compacted topic: whatever `key` named is gone."""

    key: str


class ContractError(ValueError):
    """A record that breaks its topic's contract; it belongs on the dead-letter topic, not in a retry."""

    def __init__(self, reason: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason, self.errors = reason, errors


def _field_errors(exc: ValidationError) -> tuple[str, ...]:
    # `path: message`, never the input value: a dead letter's reason must not repeat personal data.
    return tuple(f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors())


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
    key_pattern: str | None = None  # a regular expression every key must match, if keys are checked

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
        return self._adapter.json_schema()

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.model)

    def decode(self, key: bytes | None, value: bytes | None) -> Any:
        """The record's event (a model of this topic's contract), or a `Tombstone` for a null value.

        Raises `ContractError` (with one line per bad field) for a key that is not UTF-8 or does not
        match `key_pattern`, a tombstone on a topic that is not compacted or without a key, a value that
        is not the contract, or an event whose own key differs from the record's key.
        """
        try:
            text_key = key.decode() if key is not None else None
        except UnicodeDecodeError:
            raise ContractError("key is not UTF-8") from None
        if text_key is not None and self.key_pattern and not re.fullmatch(self.key_pattern, text_key):
            raise ContractError(f"key is not {self.key}", (f"key: {text_key[:100]!r}",))
        if not value:
            if not self.compacted or not text_key:
                raise ContractError("a record without a value names nothing to remove")
            return Tombstone(text_key)
        try:
            event = self._adapter.validate_json(value)
        except ValidationError as exc:
            name = getattr(self.model, "__name__", f"{self.base_name} event")
            raise ContractError(f"value is not a valid {name}", _field_errors(exc)) from None
        own_key = getattr(event, "key", None)
        if text_key is not None and isinstance(own_key, str) and own_key != text_key:
            raise ContractError(f"key does not match the value's {self.key}", (f"key: expected {own_key!r}",))
        return event


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
    "category lifetime plus the privacy ledger's year) so the aggregator can rebuild by replay. "
    "Partitioned by the street's place unit (murmur2 of its id), so each publication area's signals "
    "share a partition.",
)
STREET_NEEDS = Topic(
    "street-needs.v1",
    StreetNeedChanged,
    key="{area_id}:{category}",
    partitions=6,
    retention_ms=-1,
    compacted=True,
    key_pattern=r".+:(" + "|".join(c.value for c in Category) + ")",
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
    audience="prompter produces; feeds and notifier consume (own consumer groups)",
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
