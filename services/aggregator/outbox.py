"""The outbox relay: publishes queued street-needs changes (and dead letters), then deletes them.

Rows are written in the same transaction as the state change, so nothing is lost between commit and
publish. Rows are deleted only after Kafka acknowledged them, so a crash republishes some: harmless,
as street-needs is compacted and keyed and each value carries its version. One replica relays at a
time (an advisory lock), which keeps each key's versions in order on the topic.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from shared.kafka import client_options
from shared.settings import CommonSettings

from . import repository as repo

__all__ = ["relay_forever", "relay_once", "start_producer"]

log = logging.getLogger(__name__)
RELAYED = Counter("aggregator_outbox_relayed_total", "Outbox rows published to Kafka")
_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('aggregator.outbox', 0))"


async def start_producer(settings: CommonSettings) -> AIOKafkaProducer:
    """A producer that waits for every replica and never duplicates on retry (tombstones: value None)."""
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", enable_idempotence=True, client_id="aggregator-outbox"
    )
    await producer.start()
    return producer


async def relay_once(pool: asyncpg.Pool, producer: AIOKafkaProducer, limit: int) -> int:
    """Publish up to `limit` queued rows in order; returns how many were relayed."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(_LOCK):
            return 0
        rows = await repo.fetch_outbox(conn, limit)
        if not rows:
            return 0
        sent = [await producer.send(r["topic"], value=r["value"], key=r["key"]) for r in rows]
        await asyncio.gather(*sent)
        await repo.delete_outbox(conn, [r["id"] for r in rows])
    RELAYED.inc(len(rows))
    return len(rows)


async def relay_forever(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, *, limit: int, interval: float
) -> None:
    while True:
        try:
            if await relay_once(pool, producer, limit) == limit:
                continue  # more are waiting
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox relay failed; retrying")
        await asyncio.sleep(interval)
