"""Signals produced to `council-signals.v1`: authenticate by the `x-api-key` header, then the pipeline.

Every record ends up either accepted (its anonymised event produced), a duplicate of one already
accepted, or on `dead-letters.v1` with the reason, field errors and the original bytes. Dead letters
are produced only after the batch's signals are recorded and produced, and the caller commits the
offsets only after both, so a crash re-reads the batch: duplicates are recognised again, and at
worst a dead letter is written twice (operators see the same offset twice).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka.structs import ConsumerRecord

from shared.contracts import COUNCIL_SIGNALS, DeadLettered
from shared.kafka import dead_letter

from . import metrics
from .pipeline import Pipeline, out_of_scope
from .repository import System

__all__ = ["API_KEY_HEADER", "handle_records"]

log = logging.getLogger(__name__)
API_KEY_HEADER = "x-api-key"

FindSystem = Callable[[str], Awaitable[System | None]]
Publish = Callable[[list[DeadLettered]], Awaitable[None]]


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key.lower() == name and value:
            return value.decode("utf-8", "replace").strip() or None
    return None


def _dead(record: ConsumerRecord, reason: str, errors: Sequence[str] = ()) -> DeadLettered:
    metrics.DEAD_LETTERED.labels(reason.split(":")[0]).inc()
    return dead_letter(
        service="ingest",
        source_topic=record.topic,
        value=record.value,
        key=record.key,
        reason=reason,
        errors=tuple(errors),
        partition=record.partition,
        offset=record.offset,
    )


async def handle_records(
    records: Sequence[ConsumerRecord],
    *,
    pipeline: Pipeline,
    find_system: FindSystem,
    publish_dead_letters: Publish,
) -> None:
    """Handle one polled batch. Raises (so nothing is committed) if the signals cannot be produced."""
    dead: list[DeadLettered] = []
    systems: dict[str, System | None] = {}
    groups: dict[Any, tuple[System, list[tuple[ConsumerRecord, Any]]]] = {}
    for record in records:
        key = _header(record, API_KEY_HEADER)
        if key is None:
            dead.append(_dead(record, f"unauthenticated: no {API_KEY_HEADER} header"))
            continue
        if key not in systems:
            systems[key] = await find_system(key)
        system = systems[key]
        if system is None:
            dead.append(_dead(record, "unauthenticated: unknown or revoked API key"))
            continue
        try:
            item = json.loads(record.value or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            dead.append(_dead(record, "invalid JSON", (f"(body): {exc}",)))
            continue
        groups.setdefault(system.id, (system, []))[1].append((record, item))
    for system, entries in groups.values():
        refused = dict(out_of_scope([item for _, item in entries], system))
        dead.extend(
            _dead(
                entries[i][0],
                f"forbidden: category {c} is not allowed for this system",
                (f"category: {c} is not allowed for this system",),
            )
            for i, c in refused.items()
        )
        entries = [e for i, e in enumerate(entries) if i not in refused]
        if not entries:
            continue
        outcomes = await pipeline.accept([item for _, item in entries], system, "kafka")
        for (record, _), outcome in zip(entries, outcomes, strict=True):
            if outcome.outcome == "rejected":
                reason = "invalid signal" if outcome.reason == "invalid" else f"rejected: {outcome.reason}"
                dead.append(_dead(record, reason, outcome.errors))
    if dead:
        await publish_dead_letters(dead)
        log.info("dead-lettered council signals", extra={"count": len(dead), "topic": COUNCIL_SIGNALS.name})
