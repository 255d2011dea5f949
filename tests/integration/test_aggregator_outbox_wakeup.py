"""Rows queued in the outbox by any replica wake every relay when their transaction commits (the
queueing statement notifies), not at the relay's next poll; a transaction rolled back wakes none."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.aggregator import repository as repo
from services.aggregator.main import MIGRATIONS
from services.aggregator.outbox import relay_forever, start_producer
from shared.db import apply_migrations, create_pool

from .test_aggregator_publishing import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_commit_elsewhere_wakes_the_relay_long_before_its_poll(
    fresh_database_url, kafka_settings
) -> None:
    # A topic of its own: what the test queues is not a record any other test's consumer expects.
    topic = f"test-outbox-wakeup-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    pool = await create_pool(fresh_database_url)
    other = await asyncpg.connect(fresh_database_url)  # another replica's connection
    producer = await start_producer(kafka_settings)
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await reader.start()
    relay: asyncio.Task[None] | None = None
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "aggregator", MIGRATIONS)
        part = TopicPartition(topic, 0)
        reader.assign([part])
        await reader.seek_to_end(part)
        relay = asyncio.create_task(relay_forever(pool, producer, limit=100, interval=3600))

        async def relay_listening() -> bool:
            return bool(
                await other.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
                )
            )

        await until(relay_listening)

        rolled_back, committed = uuid.uuid4().hex.encode(), uuid.uuid4().hex.encode()
        tx = other.transaction()
        await tx.start()
        await repo.insert_dead_letters(other, topic, [(b"k", rolled_back)])
        await tx.rollback()
        async with other.transaction():
            await repo.insert_dead_letters(other, topic, [(b"k", committed)])

        seen: list[bytes] = []
        async with asyncio.timeout(15):  # the relay's own poll would come in an hour
            while committed not in seen:
                batches = await reader.getmany(timeout_ms=500)
                seen += [r.value for rs in batches.values() for r in rs if r.value is not None]
        assert rolled_back not in seen

        async def outbox_empty() -> bool:  # deleted once Kafka acknowledged it
            return await other.fetchval("SELECT count(*) FROM aggregator.outbox") == 0

        await until(outbox_empty)
    finally:
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        await reader.stop()
        await producer.stop()
        await other.close()
        await pool.close()
        await admin.delete_topics([topic])
        await admin.close()
