"""The outbox relay keeps publishing after the database drops its connections (a restart, a failover).

Found by the chaos suite: once PostgreSQL had closed the relay's listening connection, the pool
detached it and every later round failed on it, so queued changes were never published again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.aggregator.consumer import topic_partitions
from services.aggregator.main import create_app
from services.aggregator.settings import AggregatorSettings
from shared.contracts import STREET_NEEDS

from .test_aggregator_publishing import copy_gazetteer, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_relay_publishes_after_the_database_dropped_its_connections(
    stack, fresh_database_url, random_id
):
    await copy_gazetteer(stack["database"], fresh_database_url)
    settings = AggregatorSettings(
        _env_file=None,
        database_url=fresh_database_url,
        kafka_bootstrap_servers=stack["kafka"],
        group_id=f"test-{random_id}",
        replay_from=dt.datetime.now(dt.UTC),
        operator_token="op-secret-0123456789abcdefghij",
        release_check_interval_seconds=3600,
        outbox_interval_seconds=0.2,
    )
    app = create_app(settings)
    partitions = await topic_partitions(settings, STREET_NEEDS.name)
    reader = AIOKafkaConsumer(bootstrap_servers=stack["kafka"])
    await reader.start()
    try:
        starts = await reader.end_offsets(partitions)
        async with app.router.lifespan_context(app):
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            database = fresh_database_url.rsplit("/", 1)[1].split("?")[0]
            admin = await asyncpg.connect(stack["database"])
            try:

                async def relay_listening():
                    return await admin.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
                        database,
                    )

                await until(relay_listening)
                # Every connection of the service's database goes, the relay's listener with them.
                dropped = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
                assert dropped >= 1
            finally:
                await admin.close()

            key = f"outbox-recovery-{uuid.uuid4().hex}".encode()
            conn = await asyncpg.connect(fresh_database_url)
            try:
                await conn.execute(
                    "INSERT INTO aggregator.outbox (topic, key, value) VALUES ($1, $2, NULL)",
                    STREET_NEEDS.name,
                    key,
                )

                async def relayed():
                    return await conn.fetchval("SELECT count(*) FROM aggregator.outbox") == 0

                await until(relayed)
            finally:
                await conn.close()
            # The relay is still alive, and says so.
            await asyncio.sleep(0.5)
            assert (await client.get("/readyz")).status_code == 200

        reader.assign(partitions)
        for tp, offset in starts.items():
            reader.seek(tp, offset)

        async def on_topic():
            batches = await reader.getmany(timeout_ms=1000, max_records=5000)
            return any(r.key == key for records in batches.values() for r in records)

        await until(on_topic)
    finally:
        await reader.stop()
