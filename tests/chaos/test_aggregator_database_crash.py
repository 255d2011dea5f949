"""The aggregator keeps consuming after PostgreSQL crashes while signals arrive (found by the chaos suite).

A batch that fails because the database is gone is retried from the stored positions; reading those
positions needs the database too. If that fails, the consumer loop must not end: the service would
stay ready while no signal is ever counted again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts import CATALOGUE, SIGNALS_ANONYMISED, SignalAnonymised
from tests.chaos.harness import Service, Stack, free_port, service_env
from tests.chaos.observers import end_offsets

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(600)]


def _event(streets: list[str], rnd: random.Random) -> SignalAnonymised:
    category = rnd.choice([c for c, i in CATALOGUE.items() if i.sensitivity == "place"])
    return SignalAnonymised(
        event_id=uuid.uuid4(),
        category=category,
        sensitivity="place",
        action="raised",
        street_id=rnd.choice(streets),
        subject_key=uuid.uuid4().hex * 2,
        key_version=1,
        occurred_at=dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0),
        council_id="chaos",
        source="kafka",
    )


async def _behind(stack: Stack) -> int:
    ends = await end_offsets(stack.bootstrap, SIGNALS_ANONYMISED.name)
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM aggregator.consumer_offsets WHERE topic = $1",
            SIGNALS_ANONYMISED.name,
        )
    finally:
        await conn.close()
    positions = {r["partition"]: r["next_offset"] for r in rows}
    return sum(max(0, end - positions.get(p, 0)) for p, end in ends.items())


async def test_aggregator_consumes_again_after_a_database_crash_mid_stream():
    rnd = random.Random()
    stack = Stack.create()
    aggregator = None
    passed = False
    try:
        await asyncio.to_thread(stack.up)
        await asyncio.to_thread(stack.setup)
        conn = await asyncpg.connect(stack.database_url)
        try:
            streets = [r["id"] for r in await conn.fetch("SELECT id FROM gazetteer.streets")]
        finally:
            await conn.close()
        port = free_port()
        env = service_env(stack, "aggregator", port) | {"AGGREGATOR_BATCH_TIMEOUT_MS": "100"}
        aggregator = Service("aggregator", env, port, stack.home / "aggregator.log")
        aggregator.start()
        await aggregator.ready()

        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:

            async def send(n: int) -> None:
                for _ in range(n):
                    e = _event(streets, rnd)
                    await producer.send(
                        SIGNALS_ANONYMISED.name, e.model_dump_json().encode(), key=e.street_id.encode()
                    )
                    await asyncio.sleep(0.01)
                await producer.flush()

            await send(200)
            # Crash the database while signals keep arriving, and keep it down for a few seconds: the
            # aggregator's batches fail, and so does re-reading its stored positions.
            await asyncio.to_thread(stack.crash_postgres)
            await send(300)
            await asyncio.to_thread(stack.up)
            await send(200)
        finally:
            await producer.stop()

        deadline = asyncio.get_running_loop().time() + 120
        behind = await _behind(stack)
        while behind and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1)
            behind = await _behind(stack)
        assert behind == 0, f"the aggregator stopped consuming: {behind} signals never applied"
        passed = True
    finally:
        if aggregator is not None:
            aggregator.stop()
        await asyncio.to_thread(stack.down)
        if passed:
            stack.remove()
