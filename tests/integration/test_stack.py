"""The real local stack: topics as the registry declares them, migrations forward-only and re-runnable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.contracts import ALL_TOPICS, DEAD_LETTERS, DeadLettered
from shared.db import apply_migrations
from shared.kafka import dead_letter, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_topics_exist_with_the_declared_configuration(kafka_bootstrap, kafka_settings):
    await ensure_topics(kafka_settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in ALL_TOPICS])
        partitions = {d["topic"]: len(d["partitions"]) for d in described}
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in ALL_TOPICS]
        )
    finally:
        await admin.close()
    actual = {}
    for response in configs:
        for resource in response.resources:
            actual[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    for topic in ALL_TOPICS:
        assert partitions[topic.name] == topic.partitions
        assert actual[topic.name]["cleanup.policy"] == topic.config()["cleanup.policy"]
        assert actual[topic.name]["retention.ms"] == str(topic.retention_ms)


async def test_ensure_topics_is_safe_to_rerun(kafka_settings):
    assert await ensure_topics(kafka_settings) == []


async def test_a_contract_round_trips_through_the_real_broker(kafka_bootstrap, random_id):
    record = dead_letter(
        service="test",
        source_topic="x",
        value=b"\x00not json",
        key=random_id.encode(),
        reason=f"round trip {random_id}",
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        DEAD_LETTERS.name,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"t-{random_id}",
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(
            DEAD_LETTERS.name, record.model_dump_json().encode(), key=random_id.encode()
        )
        async with asyncio.timeout(30):
            async for msg in consumer:
                if msg.key == random_id.encode():
                    got = DeadLettered.model_validate_json(msg.value)
                    break
    finally:
        await consumer.stop()
        await producer.stop()
    assert got == record
    assert got.original_b64 == "AG5vdCBqc29u"  # the original bytes, intact


async def test_migrations_apply_once_and_refuse_rewritten_history(fresh_database_url, tmp_path: Path):
    (tmp_path / "001_init.sql").write_text("CREATE TABLE thing (id int PRIMARY KEY);")
    (tmp_path / "002_more.sql").write_text("ALTER TABLE thing ADD COLUMN name text;")
    conn = await asyncpg.connect(fresh_database_url)
    try:
        assert await apply_migrations(conn, "demo", tmp_path) == ["001_init.sql", "002_more.sql"]
        assert await apply_migrations(conn, "demo", tmp_path) == []
        await conn.execute("INSERT INTO demo.thing VALUES (1, 'kept')")
        (tmp_path / "001_init.sql").write_text("CREATE TABLE thing (id bigint PRIMARY KEY);")
        with pytest.raises(RuntimeError, match="changed after it was applied"):
            await apply_migrations(conn, "demo", tmp_path)
        assert await conn.fetchval("SELECT name FROM demo.thing WHERE id = 1") == "kept"
    finally:
        await conn.close()


async def test_operators_can_read_dead_letters_since_a_time(kafka_bootstrap, kafka_settings, random_id):
    import datetime as dt

    from shared.dead_letters import original_text, read_dead_letters

    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    record = dead_letter(
        service=f"svc-{random_id}",
        source_topic="council-signals.v1",
        value=b'{"event_id": 1}',
        key=None,
        reason="invalid contract",
        errors=("event_id: Input should be a valid string",),
        partition=0,
        offset=7,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(DEAD_LETTERS.name, record.model_dump_json().encode())
    finally:
        await producer.stop()
    found = [d async for d in read_dead_letters(kafka_settings, since=started, service=f"svc-{random_id}")]
    assert found == [record]
    assert original_text(found[0]) == '{"event_id": 1}'
