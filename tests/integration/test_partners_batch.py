"""The street-needs.v1 batch handler on a real database and broker: one polled batch, one transaction;
a malformed record in it is dead-lettered while the rest is stored; a redelivered batch changes nothing."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from services.partners import repository
from services.partners.geometry import AreaGeometry
from services.partners.handlers import dead_letter_publisher, handle_batch
from services.partners.main import MIGRATIONS
from shared.contracts import DEAD_LETTERS, STREET_NEEDS, StreetNeedChanged
from shared.db import apply_migrations, create_pool
from shared.kafka import make_broker
from tests.support import place_need

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _need(area_id: str, ward: str, version: int) -> StreetNeedChanged:
    return place_need(area_id, version, ward_code=ward)


def _batch(items: list[tuple[str, bytes | None]]) -> tuple[ConsumerRecord, ...]:
    """Records as one poll returns them (one partition, consecutive offsets)."""
    return tuple(
        ConsumerRecord(STREET_NEEDS.name, 0, 1000 + i, 0, 0, key.encode(), value, None, 0, 0, ())
        for i, (key, value) in enumerate(items)
    )


@pytest.fixture
async def pool(fresh_database_url) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(fresh_database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn, "partners", MIGRATIONS)
    yield pool
    await pool.close()


async def _webhook_for(pool: asyncpg.Pool, ward: str, random_id: str) -> dict:
    async with pool.acquire() as conn:
        partner = await repository.create_partner(conn, f"partner {random_id}", f"hash-{random_id}")
        return await repository.create_webhook(
            conn, partner["id"], "http://127.0.0.1:9/hook", [], [ward], "whsec_test"
        )


async def _stored(pool: asyncpg.Pool, ward: str) -> tuple[dict[str, int], list[tuple], int]:
    """(current version per key, history (key, change, version) in id order, deliveries queued)."""
    async with pool.acquire() as conn:
        needs = {
            r["key"]: r["version"]
            for r in await conn.fetch("SELECT key, version FROM partners.needs WHERE ward_code = $1", ward)
        }
        history = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT key, change, version FROM partners.needs_history WHERE ward_code = $1 ORDER BY id",
                ward,
            )
        ]
        deliveries = await conn.fetchval("SELECT count(*) FROM partners.deliveries")
    return needs, history, deliveries


async def _dead_letters(bootstrap: str, key: bytes, n: int) -> list[dict]:
    """The first `n` dead letters of records keyed `key`, as an independent consumer reads them."""
    consumer = AIOKafkaConsumer(
        DEAD_LETTERS.name,
        bootstrap_servers=bootstrap,
        group_id=f"t-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict] = []
    try:
        async for record in consumer:
            letter = json.loads(record.value)
            if letter["key_b64"] == base64.b64encode(key).decode():
                found.append(letter)
                if len(found) == n:
                    return found
    finally:
        await consumer.stop()
    return found


async def test_a_malformed_record_mid_batch_is_dead_lettered_and_the_rest_stored(
    pool, kafka_bootstrap, kafka_settings, random_id
):
    ward, street, other = f"W{random_id}", f"way/{random_id}", f"way/{random_id}b"
    await _webhook_for(pool, ward, random_id)
    bad_key, bad_value = f"{street}:graffiti", b'{"area_id": "not a need"'
    a1, a2, b1 = _need(street, ward, 1), _need(street, ward, 2), _need(other, ward, 1)
    batch = _batch(
        [
            (a1.key, a1.model_dump_json().encode()),
            (b1.key, b1.model_dump_json().encode()),
            (bad_key, bad_value),
            (a2.key, a2.model_dump_json().encode()),
            (b1.key, None),
        ]
    )
    broker = make_broker(kafka_settings, client_id=f"partners-test-{random_id}")
    await broker.start()
    try:
        await handle_batch(
            batch, pool=pool, geometry=AreaGeometry(), publish_dead_letters=dead_letter_publisher(broker)
        )
    finally:
        await broker.stop()

    needs, history, deliveries = await _stored(pool, ward)
    assert needs == {a2.key: 2}  # b1 came and went within the batch
    assert history == [
        (a1.key, "changed", 1),
        (b1.key, "changed", 1),
        (a2.key, "changed", 2),
        (b1.key, "removed", 1),
    ]
    assert deliveries == 4
    [letter] = await _dead_letters(kafka_bootstrap, bad_key.encode(), 1)
    assert letter["service"] == "partners" and letter["source_topic"] == STREET_NEEDS.name
    assert base64.b64decode(letter["original_b64"]) == bad_value
    assert (letter["partition"], letter["offset"]) == (0, batch[2].offset)
    assert letter["reason"] == "value is not a valid StreetNeedChanged" and letter["errors"]


async def test_the_same_batch_twice_stores_each_change_and_delivery_once(pool, random_id):
    ward, street, other = f"W{random_id}", f"way/{random_id}", f"way/{random_id}b"
    await _webhook_for(pool, ward, random_id)
    a1, a2, b1 = _need(street, ward, 1), _need(street, ward, 2), _need(other, ward, 1)
    batch = _batch(
        [
            (a1.key, a1.model_dump_json().encode()),
            (a2.key, a2.model_dump_json().encode()),
            (b1.key, b1.model_dump_json().encode()),
            (b1.key, None),
        ]
    )

    async def no_dead_letters(letters) -> None:
        pytest.fail(f"nothing in this batch is malformed: {letters}")

    for _ in range(2):  # a crash before the offsets were committed delivers the batch again
        await handle_batch(batch, pool=pool, geometry=AreaGeometry(), publish_dead_letters=no_dead_letters)
        needs, history, deliveries = await _stored(pool, ward)
        assert needs == {a2.key: 2}
        assert history == [
            (a1.key, "changed", 1),
            (a2.key, "changed", 2),
            (b1.key, "changed", 1),
            (b1.key, "removed", 1),
        ]
        assert deliveries == 4


async def test_a_poll_repeating_half_of_an_earlier_one_stores_each_change_and_delivery_once(pool, random_id):
    ward, n = f"W{random_id}", 200
    await _webhook_for(pool, ward, random_id)
    needs = [_need(f"way/{random_id}-{i:03d}", ward, 1) for i in range(n)]
    records = _batch([(need.key, need.model_dump_json().encode()) for need in needs])

    async def no_dead_letters(letters) -> None:
        pytest.fail(f"nothing in this batch is malformed: {letters}")

    # The first half was stored, then the consumer stopped before committing its offsets: the next poll
    # returns that half again, followed by the rest.
    await handle_batch(
        records[: n // 2], pool=pool, geometry=AreaGeometry(), publish_dead_letters=no_dead_letters
    )
    await handle_batch(records, pool=pool, geometry=AreaGeometry(), publish_dead_letters=no_dead_letters)

    stored, history, deliveries = await _stored(pool, ward)
    assert stored == {need.key: 1 for need in needs}
    assert history == [(need.key, "changed", 1) for need in needs]
    assert deliveries == n
