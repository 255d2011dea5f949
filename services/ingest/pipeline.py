"""The one path every signal takes, whatever its source: validate, anonymise, de-duplicate, produce.

Exactly once in effect. For a batch, in ONE database transaction: insert the new event ids into
`ingest.accepted_signals` (ON CONFLICT DO NOTHING RETURNING tells which are new), produce the new
ones' anonymised events and await every broker ack, then commit. If producing fails the transaction
rolls back, so nothing is recorded and the client (or the Kafka consumer) retries safely.

The one gap: a crash after the broker acked but before the commit. Then the ids are not recorded,
the retry produces the same events again — with the same deterministic `event_id` (uuid5 of system
and council event id), the same street, category and `subject_key`, because anonymisation is a pure
function of the input and the secret. The aggregator is idempotent on (street, category,
subject_key) and on event id, so a redelivery changes nothing downstream. Committing first instead
would risk the opposite failure — recorded but never produced, a lost signal — which no retry fixes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from shared.contracts import SIGNALS_ANONYMISED, Category, CouncilSignal, Sensitivity, SignalAnonymised
from shared.gazetteer.model import Gazetteer
from shared.kafka import validation_errors

from . import metrics, repository
from .anonymise import Pseudonymiser, Rejected, Source, anonymise, coarsen
from .repository import System

__all__ = ["Accepted", "OutOfScope", "Outcome", "Pipeline", "ProduceFailed", "out_of_scope"]

OutcomeKind = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one item of a batch. `errors` name the field, relative to the item."""

    index: int
    outcome: OutcomeKind
    event_id: str | None = None  # the council's own id, echoed when it could be read
    id: uuid.UUID | None = None  # the anonymised event's id
    errors: tuple[str, ...] = ()
    reason: str | None = None
    street_id: str | None = None  # where an accepted or duplicate item was placed


@dataclass(frozen=True)
class Accepted:
    """A valid, anonymised item (raw signal kept in memory only, for the Open311 status update)."""

    index: int
    signal: CouncilSignal
    event: SignalAnonymised


class OutOfScope(Exception):
    """Items whose category the system may not send: [(index, category)]."""

    def __init__(self, items: list[tuple[int, str]]) -> None:
        super().__init__(", ".join(f"items[{i}].category: {c}" for i, c in items))
        self.items = items


class ProduceFailed(Exception):
    """The broker did not ack every event; nothing was recorded, retrying is safe."""


def out_of_scope(items: Sequence[Any], system: System) -> list[tuple[int, str]]:
    """(index, category) of the items naming a known category this system may not send."""
    known = {c.value for c in Category}
    found = []
    for index, item in enumerate(items):
        category = (
            item.category.value
            if isinstance(item, CouncilSignal)
            else (item.get("category") if isinstance(item, dict) else None)
        )
        # Anything may arrive here ({} or a list included): only a known category name is in scope.
        if isinstance(category, str) and category in known and category not in system.categories:
            found.append((index, category))
    return found


@dataclass
class Pipeline:
    pool: asyncpg.Pool
    producer: AIOKafkaProducer  # the service's own (`shared.kafka.start_producer`)
    gazetteer: Gazetteer
    pseudonymiser: Pseudonymiser
    max_distance_m: float
    produce_timeout_s: float = 30.0

    def prepare(
        self, items: Sequence[Any], system: System, source: Source
    ) -> tuple[list[Outcome], list[Accepted]]:
        """Validate and anonymise every item (pure). Raises OutOfScope before anything else is done."""
        rejected: list[Outcome] = []
        valid: list[tuple[int, CouncilSignal]] = []
        now = dt.datetime.now(dt.UTC)
        for index, item in enumerate(items):
            try:
                signal = item if isinstance(item, CouncilSignal) else CouncilSignal.model_validate(item)
            except ValidationError as exc:
                ref = item.get("event_id") if isinstance(item, dict) else None
                rejected.append(
                    Outcome(
                        index,
                        "rejected",
                        ref if isinstance(ref, str) else None,
                        errors=validation_errors(exc),
                        reason="invalid",
                    )
                )
                continue
            valid.append((index, signal))
        scope = out_of_scope(items, system)
        if scope:
            raise OutOfScope(scope)
        accepted: list[Accepted] = []
        for index, signal in valid:
            try:
                event = anonymise(
                    signal,
                    system_id=system.id,
                    council_id=system.council_id,
                    gazetteer=self.gazetteer,
                    pseudonymiser=self.pseudonymiser,
                    source=source,
                    max_distance_m=self.max_distance_m,
                    now=now,
                )
            except Rejected as exc:
                rejected.append(
                    Outcome(index, "rejected", signal.event_id, errors=(str(exc),), reason=exc.reason)
                )
                continue
            accepted.append(Accepted(index, signal, event))
        return rejected, accepted

    async def accept(self, items: Sequence[Any], system: System, source: Source) -> list[Outcome]:
        """Outcomes in input order. Raises OutOfScope or ProduceFailed (then nothing took effect)."""
        started = time.perf_counter()
        metrics.RECEIVED.labels(source).inc(len(items))
        rejected, valid = self.prepare(items, system, source)
        outcomes = {o.index: o for o in rejected}
        first: dict[uuid.UUID, Accepted] = {}
        for a in valid:  # the same event twice in one batch: the first one counts
            if a.event.event_id in first:
                outcomes[a.index] = Outcome(
                    a.index, "duplicate", a.signal.event_id, a.event.event_id, street_id=a.event.street_id
                )
            else:
                first[a.event.event_id] = a
        if first:
            fresh = await self._record_and_produce(list(first.values()), system, source)
            for a in first.values():
                kind: OutcomeKind = "accepted" if a.event.event_id in fresh else "duplicate"
                outcomes[a.index] = Outcome(
                    a.index, kind, a.signal.event_id, a.event.event_id, street_id=a.event.street_id
                )
        result = [outcomes[i] for i in range(len(items))]
        for o in result:
            if o.outcome == "accepted":
                metrics.ACCEPTED.labels(source).inc()
            elif o.outcome == "duplicate":
                metrics.DUPLICATE.labels(source).inc()
            else:
                metrics.REJECTED.labels(source, o.reason or "invalid").inc()
        metrics.BATCH_SECONDS.labels(source).observe(time.perf_counter() - started)
        return result

    async def _record_and_produce(
        self, batch: list[Accepted], system: System, source: Source
    ) -> set[uuid.UUID]:
        async with self.pool.acquire() as conn, conn.transaction():
            fresh_ids = await repository.insert_accepted(
                conn,
                [a.event.event_id for a in batch],
                system.id,
                source,
                [str(a.event.category) for a in batch],
            )
            fresh = [a for a in batch if a.event.event_id in fresh_ids]
            await _record_open311(conn, system, source, fresh)
            try:
                await self._produce([a.event for a in fresh])
            except Exception as exc:  # any broker failure: roll back, the caller answers "retry"
                raise ProduceFailed(str(exc) or type(exc).__name__) from exc
        metrics.PRODUCED.labels(source).inc(len(fresh))
        return fresh_ids

    async def _produce(self, events: list[SignalAnonymised]) -> None:
        if not events:
            return
        async with asyncio.timeout(self.produce_timeout_s):
            # Enqueue all, then await every ack: aiokafka batches them into few requests. The record
            # timestamp is coarsened as the event's own time is (docs/privacy.md rule 1).
            now = dt.datetime.now(dt.UTC)
            pending = [
                await self.producer.send(
                    SIGNALS_ANONYMISED.name,
                    _wire(e),
                    key=e.street_id.encode(),
                    timestamp_ms=int(coarsen(now, e.sensitivity).timestamp() * 1000),
                )
                for e in events
            ]
            await asyncio.gather(*pending)


def _wire(event: SignalAnonymised) -> bytes:
    """The event's JSON; `previous_keys` only after a key rotation, so that an aggregator from before
    that field (its contracts forbid unknown fields) reads a deployment that never rotated."""
    return event.model_dump_json(exclude={"previous_keys"} if not event.previous_keys else None).encode()


async def _record_open311(
    conn: asyncpg.Connection, system: System, source: Source, fresh: list[Accepted]
) -> None:
    """Open311's street-level view, kept in the same unit of work as the signals: a request sent
    through Open311 opens a row (its id is the signal's subject and event id), and a withdrawn place
    signal closes the council's open requests for that subject, whichever way it came."""
    if source == "open311":
        for a in fresh:
            await repository.insert_open311(
                conn,
                service_request_id=a.signal.subject_ref,
                council_id=system.council_id,
                system_id=system.id,
                event_id=a.event.event_id,
                service_code=str(a.event.category),
                street_id=a.event.street_id,
                requested_at=a.event.occurred_at,
            )
    closing = [a for a in fresh if a.event.action == "withdrawn" and a.event.sensitivity is Sensitivity.PLACE]
    if closing:
        await repository.close_open311(
            conn,
            system.council_id,
            [a.signal.subject_ref for a in closing],
            max(a.event.occurred_at for a in closing),
        )
