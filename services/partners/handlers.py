"""The street-needs.v1 subscriber: current state, history and webhook deliveries, a batch per transaction."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import asyncpg
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import STREET_NEEDS, DeadLettered
from shared.kafka import dead_letter
from shared.kafka import publish_dead_letters as shared_publish_dead_letters
from shared.service import Runtime
from shared.subscribers import batch_subscriber, rest_after_poll

from . import repository
from .changes import HistoryRow, Rejected, Removal, fold, parse
from .context import PartnersContext
from .geometry import AreaGeometry
from .payloads import webhook_body

__all__ = ["MAX_RECORDS", "dead_letter_publisher", "handle_batch", "register_handlers"]

log = logging.getLogger(__name__)
SERVICE = "partners"
MAX_RECORDS = 500  # records per poll, so per transaction: a burst is stored in a few round trips

PublishDeadLetters = Callable[[list[DeadLettered]], Awaitable[None]]


def _minute(now: dt.datetime) -> dt.datetime:
    return now.replace(second=0, microsecond=0)


def _body(row: HistoryRow) -> str:
    return webhook_body(
        {
            "change": row.change,
            "changed_at": row.changed_at,
            "payload": row.payload,
            "key": row.key,
            "area_id": row.area_id,
            "category": row.category,
            "version": row.version,
        }
    )


def _letter(rejected: Rejected) -> DeadLettered:
    record = rejected.record
    log.warning("street-needs record dead-lettered", extra={"reason": rejected.reason})
    return dead_letter(
        service=SERVICE,
        source_topic=STREET_NEEDS.name,
        value=record.value,
        key=record.key,
        reason=rejected.reason,
        errors=rejected.errors,
        partition=record.partition,
        offset=record.offset,
    )


async def handle_batch(
    records: Sequence[ConsumerRecord],
    *,
    pool: asyncpg.Pool | None,
    geometry: AreaGeometry,
    publish_dead_letters: PublishDeadLetters,
) -> None:
    """Store one polled batch in one transaction, then dead-letter its malformed records.

    Raises (so nothing is committed and the batch comes again) if either fails; a redelivered batch
    adds no history row or delivery twice, and at worst a dead letter is written twice.
    """
    ops, rejected = parse(records)
    if ops:
        if pool is None:
            raise RuntimeError("no database pool: the service consumes only while it runs")
        removed = {op.key for op in ops if isinstance(op, Removal)}
        async with pool.acquire() as conn, conn.transaction():
            stored = await repository.stored_states(conn, removed)
            plan = fold(ops, stored, _minute(dt.datetime.now(dt.UTC)))
            boxes = [geometry.bbox(n["area_id"], n["area_kind"], n["street_ids"]) for n in plan.upserts]
            await repository.apply_plan(conn, plan, boxes, _body)
    if rejected:
        await publish_dead_letters([_letter(r) for r in rejected])


def dead_letter_publisher(broker: KafkaBroker) -> PublishDeadLetters:
    """Publishes a batch's dead letters on `broker` (keyed by source topic: street-needs.v1)."""
    return partial(shared_publish_dead_letters, broker)


def register_handlers(
    broker: KafkaBroker,
    runtime: Runtime[PartnersContext],
    group_id: str,
    *,
    max_records: int = MAX_RECORDS,
    rest_ms: int = 0,
) -> None:
    """Subscribe `runtime`'s context to street-needs.v1; `rest_ms` paces the polls while keeping up
    (shared.subscribers.rest_after_poll)."""
    publish_dead_letters = dead_letter_publisher(broker)

    # The raw records: `handle_batch` decodes them itself and dead-letters what breaks the contract.
    subscriber = batch_subscriber(
        broker,
        STREET_NEEDS.name,
        group_id=group_id,
        max_records=max_records,
        title="partners: street-needs.v1",
    )

    @subscriber
    async def on_street_needs(msg: KafkaMessage) -> None:
        started = time.monotonic()
        raw = msg.raw_message
        records = tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)
        await handle_batch(
            records,
            pool=runtime.pool,
            geometry=runtime.context.geometry,
            publish_dead_letters=publish_dead_letters,
        )
        await rest_after_poll(started, len(records), max_records, rest_ms)
